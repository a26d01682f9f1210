"""The integration tests' own policy (Tests/Integration/fixtures/main.yaml, and alt.yaml, the
same with another aws host and status) and the loopback address plan of the tests that put
real proxies in front of a sidecar:

- 127.0.0.1  the proxies' own address toward the sidecar (trusted by the sidecar);
- 127.0.0.2  a client inside "aws" (a /32 the sidecar snapshots give to aws, us-east-1);
- 127.0.0.3  a client inside "gcp" (us-central1);
- 127.0.0.4  a client of no provider (and the one that tries to spoof X-Forwarded-For);
- 127.0.0.5  a load balancer in front of the proxy: the proxies trust its X-Forwarded-For.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .paths import FIXTURES
from .snapshots import absolutize

MANIFEST = "/v2/library/nginx/manifests/1.25"
AWS = "https://registry.aws.test"        # main.yaml: aws's registry (a 302 for MANIFEST)
AWS2 = "https://registry2.aws.test"      # alt.yaml: aws's registry (a 308 for MANIFEST)
AWS_CLIENT, GCP_CLIENT, NO_PROVIDER_CLIENT, BALANCER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
# The proxies' own address and the balancer: the sidecar believes their headers.
SIDECAR_TRUST = ["127.0.0.1/32", BALANCER + "/32"]
LOOPBACK_PREFIXES = [(AWS_CLIENT, "aws", "us-east-1"), (GCP_CLIENT, "gcp", "us-central1")]


def fixture_policy(dest_dir: Path, name: str, extra_prefixes=(), aws_registry: str | None = None) -> Path:
    """main.yaml written to dest_dir/NAME.yaml with absolute source paths, plus /32 prefixes
    (address, provider, region) in a CSV beside it; `aws_registry` replaces aws's registry host
    (tells a reloaded snapshot apart)."""
    config = absolutize(yaml.safe_load((FIXTURES / "main.yaml").read_text()), FIXTURES)
    for provider in config.get("providers", []):
        if aws_registry and provider["name"] == "aws":
            provider["registry"] = aws_registry
    if extra_prefixes:
        csv = dest_dir / f"{name}-loopback.csv"
        csv.write_text("prefix,provider,region\n" + "".join(
            f"{address}/32,{provider},{region}\n" for address, provider, region in extra_prefixes))
        config.setdefault("sources", []).append({"format": "csv", "path": str(csv)})
    path = dest_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path

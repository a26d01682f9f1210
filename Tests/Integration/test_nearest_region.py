"""The nearest-region step against distances computed here, independently: for a client in every
AWS and Google Cloud region of the built-in table (`redirector regions`), the chosen mirror is the
one whose region is nearest by the haversine formula, with the client's own region down."""

from __future__ import annotations

import csv
import io
import json
import math

from testkit import paths
from testkit.processes import run
from testkit.snapshots import compile_snapshot

MIRROR_REGIONS = {"aws": ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1", "ap-northeast-1"],
                  "gcp": ["us-central1", "europe-west4", "asia-east1"]}


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def regions() -> dict[str, dict[str, tuple[float, float]]]:
    table: dict[str, dict[str, tuple[float, float]]] = {}
    text = run([paths.CLI, "regions"]).stdout
    for row in csv.DictReader(io.StringIO(text)):
        table.setdefault(row["provider"], {})[row["region"]] = (float(row["latitude"]), float(row["longitude"]))
    return table


def test_clients_go_to_the_nearest_region_with_a_mirror(tmp_path):
    table = regions()
    assert len(table["aws"]) >= 30 and len(table["gcp"]) >= 30, "the built-in table lost regions"
    lines, expected = ["prefix,provider,region"], {}
    for provider in ("aws", "gcp"):
        for index, (region, here) in enumerate(sorted(table[provider].items())):
            client = f"10.{1 if provider == 'aws' else 2}.{index}.1"
            lines.append(f"10.{1 if provider == 'aws' else 2}.{index}.0/24,{provider},{region}")
            candidates = [r for r in MIRROR_REGIONS[provider] if r != region]
            if region in MIRROR_REGIONS[provider]:
                expected[client] = (region, "primary")
            else:
                nearest = min(candidates, key=lambda r: (haversine(here, table[provider][r]), sorted(MIRROR_REGIONS[provider]).index(r)))
                expected[client] = (nearest, "nearest-region")
    (tmp_path / "clients.csv").write_text("\n".join(lines) + "\n")
    providers = []
    for provider, mirrors in MIRROR_REGIONS.items():
        regions_yaml = "\n".join(f"      {r}: {{ artifacts: 'https://{r}.{provider}.example' }}" for r in mirrors)
        providers.append(f"  - name: {provider}\n    artifacts: https://{provider}.example\n    nearestRegion: true\n"
                         f"    regions:\n{regions_yaml}")
    (tmp_path / "redirector.yaml").write_text(
        "version: 1\nsources: [{ format: csv, path: clients.csv }]\nproviders:\n" + "\n".join(providers)
        + "\nroutes:\n  - { name: files, path: '/f/{rest...}', redirect: { to: artifacts } }\n")
    snapshot = compile_snapshot(tmp_path / "redirector.yaml", tmp_path / "regions.rdb")
    wrong = []
    for client, (region, step) in expected.items():
        answer = json.loads(run([paths.CLI, "decide", "-s", snapshot, "--client", client, "--json", "/f/x"]).stdout)
        provider = "aws" if client.startswith("10.1.") else "gcp"
        want = f"https://{region}.{provider}.example"
        if answer["target"] != want or answer["step"] != step:
            wrong.append(f"{client} ({answer['region']}): got {answer['target']} {answer['step']}, want {want} {step}")
    assert not wrong, "\n".join(wrong)

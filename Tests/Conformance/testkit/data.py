"""Real BGP prefix → ASN tables (Debian python3-pyasn dumps, and the repository's extracts)."""

from __future__ import annotations

import gzip
import ipaddress
from pathlib import Path


def read_pyasn(path: Path) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]]:
    """(network, asn) in file order from a pyasn dump (`prefix<TAB>asn`, `;` comments, plain or
    gzip); host bits are cleared, as the compiler does."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    out = []
    with opener(path, "rt") as lines:
        for line in lines:
            if not line.strip() or line.startswith(";"):
                continue
            prefix, asn = line.split()
            out.append((ipaddress.ip_network(prefix, strict=False), int(asn)))
    return out

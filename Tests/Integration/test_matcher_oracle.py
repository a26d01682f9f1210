"""The matcher against an independent oracle (pytricia) on the real Debian python3-pyasn tables.

For each table: compile it (every prefix keeps its ASN), then look up millions of random addresses
plus every prefix's first and last address and their neighbours through `redirector lookup`, and
compare prefix and ASN with pytricia. A sample also goes through libredirector's C ABI (ctypes) and
must agree with the CLI. Zero mismatches allowed.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess

import pytest
import pytricia

from testkit import abi
from testkit.data import read_pyasn
from testkit.paths import CLI, PYASN_DATA
from testkit.processes import run

TABLES = {
    # name: (file, family, expected prefix count of that family, random addresses)
    "ipasn_20140513-v4": ("ipasn_20140513.dat.gz", 4, 512_621, 2_000_000),
    "ipasn6_20151101-v6": ("ipasn6_20151101.dat.gz", 6, 27_693, 1_000_000),
    "ipasn6_20151101-v4": ("ipasn6_20151101.dat.gz", 4, 606_138, 500_000),
}


def read_table(path, family: int) -> list[tuple[ipaddress._BaseNetwork, int]]:
    """(network, asn) of one address family in file order; host bits cleared as the compiler does."""
    return [(network, asn) for network, asn in read_pyasn(path) if network.version == family]


def probe_addresses(entries, family: int, count: int, rng: random.Random) -> list[int]:
    """Random addresses, and each prefix's first/last address and their outside neighbours."""
    bits = 32 if family == 4 else 128
    top = (1 << bits) - 1
    probes = set()
    for network, _ in entries:
        first, last = int(network.network_address), int(network.broadcast_address)
        probes.update((first, last, max(first - 1, 0), min(last + 1, top)))
    if family == 4:
        probes.update(rng.getrandbits(32) for _ in range(count))
    else:
        # Uniform IPv6 addresses almost never match: draw inside (and just around) real prefixes.
        for _ in range(count):
            network = entries[rng.randrange(len(entries))][0]
            host_bits = bits - network.prefixlen
            probes.add(int(network.network_address) | (rng.getrandbits(host_bits) if host_bits else 0))
        probes.update(rng.getrandbits(128) for _ in range(count // 10))
    return sorted(probes)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_matcher_agrees_with_pytricia(name, library, tmp_path):
    file, family, expected, random_count = TABLES[name]
    source = PYASN_DATA / file
    assert source.exists(), f"{source} missing: scripts/setup.sh installs python3-pyasn"
    entries = read_table(source, family)
    assert len(entries) == expected

    # The oracle: first entry wins for duplicate prefixes, as in the compiler.
    oracle = pytricia.PyTricia(32 if family == 4 else 128)
    for network, asn in entries:
        if not oracle.has_key(str(network)):
            oracle[str(network)] = (str(network), asn)

    config = tmp_path / "table.yaml"
    config.write_text(f"asnTable: [{{format: pyasn, path: {source}}}]\n")
    snapshot = tmp_path / "table.rdb"
    run([CLI, "compile", "-c", config, "-o", snapshot], timeout=300)

    probes = probe_addresses(entries, family, random_count, random.Random(20261122))
    to_text = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    texts = [str(to_text(value)) for value in probes]
    result = subprocess.run([str(CLI), "lookup", "-s", str(snapshot)], input="\n".join(texts) + "\n",
                            capture_output=True, text=True, timeout=600, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == len(texts)

    mismatches = []
    for text, line in zip(texts, lines):
        address, prefix, _provider, _region, asn = line.split("\t")
        assert address == text
        want = oracle.get(text)
        got = None if prefix == "-" else (str(ipaddress.ip_network(prefix)), int(asn))
        if got != want:
            mismatches.append((text, got, want))
    assert not mismatches, f"{len(mismatches)} of {len(texts)} lookups differ, e.g. {mismatches[:5]}"
    print(f"{name}: {len(entries)} prefixes, {len(texts)} addresses, 0 mismatches")

    # The same answers through the C ABI: rdr_decide reports prefix and ASN.
    table = abi.Library(library).open(snapshot)
    sample = random.Random(7).sample(range(len(texts)), min(200_000, len(texts)))
    for index in sample:
        address, prefix, _provider, _region, asn = lines[index].split("\t")
        assert prefix_and_asn(table, address) == (None if prefix == "-" else (prefix, int(asn))), address
    table.close()


def prefix_and_asn(table: abi.Table, address: str):
    """The matched prefix and ASN rdr_decide reports for a client address (None: no match)."""
    decided = table.decide(address.encode(), b"GET", b"/", b"h", buffer=512)
    assert decided.rc == abi.RDR_OK
    if decided.decision.attribute < 0:
        return None
    prefix = table.format_prefix(decided.decision)
    assert prefix
    return prefix, decided.decision.asn

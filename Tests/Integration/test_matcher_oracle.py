"""The matcher against an independent oracle (pytricia) on the real Debian python3-pyasn tables.

For each table: compile it (every prefix keeps its ASN), then look up millions of random addresses
plus every prefix's first and last address and their neighbours through `redirector lookup`, and
compare prefix and ASN with pytricia. A sample also goes through libredirector's C ABI (ctypes) and
must agree with the CLI. Zero mismatches allowed.

The lookup calls (`rdr_lookup`, `rdr_lookup_batch_v4`) are checked on a table with providers
against the provider `rdr_decide` reports, which reads the attributes by another path.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess

import pytest
import pytricia

from testkit import abi
from testkit.data import read_pyasn
from testkit.paths import CLI, PYASN_DATA, REPO
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


def test_lookup_calls_agree_with_decisions(library, tmp_path):
    """rdr_lookup and rdr_lookup_batch_v4 give the provider rdr_decide reports, for IPv4 and IPv6
    clients of the cloud ranges, the vendor ASNs and the full pyasn table."""
    data = REPO / "examples" / "data"
    config = tmp_path / "providers.yaml"
    config.write_text(f"""version: 1
providers:
  - {{name: amazon, sources: [{{format: aws-ip-ranges, path: {data}/aws-ip-ranges.json}}]}}
  - {{name: google, sources: [{{format: gcp-cloud, path: {data}/gcp-cloud.json}}]}}
sources: [{{format: k8s-asns, path: {data}/k8s.io-asns}}]
asnTable: [{{format: pyasn, path: {PYASN_DATA}/ipasn6_20151101.dat.gz}}]
""")
    snapshot = tmp_path / "providers.rdb"
    run([CLI, "compile", "-c", config, "-o", snapshot], timeout=300)
    table = abi.Library(library).open(snapshot)
    rng = random.Random(20261202)

    def decided_provider(address: ipaddress._BaseAddress) -> int:
        decided = table.decide(str(address).encode(), b"GET", b"/", b"h", buffer=512)
        assert decided.rc == abi.RDR_OK
        return decided.decision.provider if decided.decision.attribute >= 0 else abi.RDR_NO_MATCH

    # Random IPv4 addresses, and addresses inside every cloud range (most would miss them).
    v4 = [rng.getrandbits(32) for _ in range(100_000)]
    for network, _ in read_table(PYASN_DATA / "ipasn6_20151101.dat.gz", 4)[::20]:
        v4.append(int(network.network_address) | rng.getrandbits(32 - network.prefixlen))
    singles = [table.lookup(value.to_bytes(4, "big")) for value in v4]
    assert table.lookup_batch_v4(v4) == singles
    providers = {value for value in singles if value >= 0}
    assert len(providers) >= 2, f"the sample reaches too few providers to mean anything: {providers}"
    mismatches = [(str(ipaddress.IPv4Address(value)), got) for value, got in zip(v4, singles)
                  if decided_provider(ipaddress.IPv4Address(value)) != got]
    assert not mismatches, f"{len(mismatches)} of {len(v4)} IPv4 lookups differ from rdr_decide, e.g. {mismatches[:5]}"

    v6 = []
    for network, _ in read_table(PYASN_DATA / "ipasn6_20151101.dat.gz", 6):
        v6.append(int(network.network_address) | rng.getrandbits(128 - network.prefixlen))
    v6 += [rng.getrandbits(128) for _ in range(10_000)]
    mismatches = [str(ipaddress.IPv6Address(value)) for value in v6
                  if table.lookup(value.to_bytes(16, "big")) != decided_provider(ipaddress.IPv6Address(value))]
    assert not mismatches, f"{len(mismatches)} of {len(v6)} IPv6 lookups differ from rdr_decide, e.g. {mismatches[:5]}"
    table.close()

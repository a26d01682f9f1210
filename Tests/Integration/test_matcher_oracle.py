"""The matcher against an independent oracle (pytricia) on the real Debian python3-pyasn tables.

For each table: compile it (every prefix keeps its ASN), then look up millions of random addresses
plus every prefix's first and last address and their neighbours through `redirector lookup`, and
compare prefix and ASN with pytricia. A sample also goes through libredirector's C ABI (ctypes) and
must agree with the CLI. Zero mismatches allowed.
"""

from __future__ import annotations

import ctypes
import gzip
import ipaddress
import random
import subprocess
from pathlib import Path

import pytest
import pytricia

from harness import CLI, LIBRARY, run

PYASN = Path("/usr/lib/python3/dist-packages/data")
TABLES = {
    # name: (file, family, expected prefix count of that family, random addresses)
    "ipasn_20140513-v4": ("ipasn_20140513.dat.gz", 4, 512_621, 2_000_000),
    "ipasn6_20151101-v6": ("ipasn6_20151101.dat.gz", 6, 27_693, 1_000_000),
    "ipasn6_20151101-v4": ("ipasn6_20151101.dat.gz", 4, 606_138, 500_000),
}


def read_table(path: Path, family: int) -> list[tuple[ipaddress._BaseNetwork, int]]:
    """(network, asn) in file order; host bits cleared as the compiler does."""
    entries = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            if line.startswith(";") or not line.strip():
                continue
            prefix, asn = line.rstrip("\n").split("\t")
            network = ipaddress.ip_network(prefix, strict=False)
            if network.version == family:
                entries.append((network, int(asn)))
    return entries


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
def test_matcher_agrees_with_pytricia(name, tmp_path):
    file, family, expected, random_count = TABLES[name]
    source = PYASN / file
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
    abi = RedirectorABI(LIBRARY, snapshot)
    sample = random.Random(7).sample(range(len(texts)), min(200_000, len(texts)))
    for index in sample:
        address, prefix, _provider, _region, asn = lines[index].split("\t")
        assert abi.prefix_and_asn(address) == (None if prefix == "-" else (prefix, int(asn))), address
    abi.close()


class RdrRequest(ctypes.Structure):
    _fields_ = [("client", ctypes.c_char_p), ("client_len", ctypes.c_size_t),
                ("method", ctypes.c_char_p), ("method_len", ctypes.c_size_t),
                ("host", ctypes.c_char_p), ("host_len", ctypes.c_size_t),
                ("path", ctypes.c_char_p), ("path_len", ctypes.c_size_t)]


class RdrDecision(ctypes.Structure):
    _fields_ = [("action", ctypes.c_int32), ("status", ctypes.c_int32), ("location_len", ctypes.c_size_t),
                ("provider", ctypes.c_int32), ("route", ctypes.c_int32), ("asn", ctypes.c_uint32),
                ("prefix_len", ctypes.c_int32), ("family", ctypes.c_int32), ("prefix", ctypes.c_uint8 * 16),
                ("provider_name", ctypes.c_char_p), ("region", ctypes.c_char_p),
                ("route_name", ctypes.c_char_p), ("target_host", ctypes.c_char_p)]


class RedirectorABI:
    """libredirector.so through ctypes, declared from include/redirector.h."""

    def __init__(self, library: Path, snapshot: Path):
        self.lib = ctypes.CDLL(str(library))
        self.lib.rdr_open.restype = ctypes.c_void_p
        self.lib.rdr_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        self.lib.rdr_close.argtypes = [ctypes.c_void_p]
        self.lib.rdr_decide.argtypes = [ctypes.c_void_p, ctypes.POINTER(RdrRequest), ctypes.POINTER(RdrDecision),
                                        ctypes.c_char_p, ctypes.c_size_t]
        self.lib.rdr_format_prefix.argtypes = [ctypes.POINTER(RdrDecision), ctypes.c_char_p, ctypes.c_size_t]
        error = ctypes.create_string_buffer(256)
        self.table = self.lib.rdr_open(str(snapshot).encode(), error, len(error))
        assert self.table, error.value.decode()
        self.buffer = ctypes.create_string_buffer(512)
        self.prefix = ctypes.create_string_buffer(64)

    def prefix_and_asn(self, address: str):
        client = address.encode()
        request = RdrRequest(client, len(client), b"GET", 3, b"h", 1, b"/", 1)
        decision = RdrDecision()
        assert self.lib.rdr_decide(self.table, ctypes.byref(request), ctypes.byref(decision),
                                   self.buffer, len(self.buffer)) == 0
        if decision.prefix_len < 0:
            return None
        assert self.lib.rdr_format_prefix(ctypes.byref(decision), self.prefix, len(self.prefix)) > 0
        return self.prefix.value.decode(), decision.asn

    def close(self):
        self.lib.rdr_close(self.table)

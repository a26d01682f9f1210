"""An independent reading of the IPFire location database (libloc `location.db`, format version 1),
for the tests: written from the format's description in Python, separately from the Swift reader,
to check it. Only what the tests compare is read: the header, the countries and the network tree.
The file's integrity is not checked here (the Swift reader's hostile-input tests do that)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

DEBIAN_DATABASE = Path("/usr/share/libloc-location/location.db")   # Debian libloc-database
NO_NETWORK = 0xFFFFFFFF
MAPPED = 0xFFFF << 32   # IPv4 lives at ::ffff:0:0/96 in the tree


@dataclass
class Network:
    """One tree network: family 4 or 6, integer network address, prefix length, ASN, country."""
    family: int
    address: int
    length: int
    asn: int
    country: str

    @property
    def last(self) -> int:
        bits = 32 if self.family == 4 else 128
        return self.address | ((1 << (bits - self.length)) - 1)


@dataclass
class Database:
    created_at: int
    vendor: str
    license: str
    countries: dict[str, str]   # code -> name
    networks: list[Network]


def read(path: Path = DEBIAN_DATABASE) -> Database:
    data = Path(path).read_bytes()
    if data[:7] != b"LOCDBXX" or data[7] != 1:
        raise ValueError(f"{path}: not a version 1 location database")
    (created, vendor, _description, license_, _as_off, _as_len, net_off, net_len, tree_off, tree_len,
     country_off, country_len, pool_off, pool_len) = struct.unpack_from(">QIIIIIIIIIIIII", data, 8)
    pool = data[pool_off:pool_off + pool_len]

    def string(offset: int) -> str:
        return pool[offset:pool.index(b"\0", offset)].decode()

    countries = {}
    for at in range(country_off, country_off + country_len, 8):
        code = data[at:at + 2].decode()
        countries[code] = string(struct.unpack_from(">I", data, at + 4)[0])

    def network_data(index: int) -> tuple[int, str]:
        at = net_off + 12 * index
        return struct.unpack_from(">I", data, at + 4)[0], data[at:at + 2].rstrip(b"\0").decode()

    networks = []
    stack = [(0, 0, 0)]   # node, path bits, depth
    while stack:
        node, bits, depth = stack.pop()
        zero, one, index = struct.unpack_from(">III", data, tree_off + 12 * node)
        if index != NO_NETWORK:
            asn, country = network_data(index)
            if depth >= 96 and bits >> 32 == 0xFFFF:
                networks.append(Network(4, bits & 0xFFFFFFFF, depth - 96, asn, country))
            else:
                networks.append(Network(6, bits, depth, asn, country))
        if one:
            stack.append((one, bits | (1 << (127 - depth)), depth + 1))
        if zero:
            stack.append((zero, bits, depth + 1))
    return Database(created, string(vendor), string(license_), countries, networks)

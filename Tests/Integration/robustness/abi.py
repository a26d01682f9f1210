"""ctypes binding of libredirector.so (include/redirector.h) for the robustness tests, and a
command line that runs the checks in a child process (a crash then fails one test instead of
killing pytest):

    python3 abi.py resealed SNAPSHOT WORK COUNT SEED   damaged sections with a repaired checksum
    python3 abi.py hostile SNAPSHOT                     hostile requests through rdr_decide

Each prints one JSON object with its counts and exits 1 (with the problems) when a check fails.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LIBRARY = Path(os.environ.get("REDIRECTOR_LIBRARY", REPO / "out" / "lib" / "libredirector.so"))

RDR_PASS, RDR_REDIRECT, RDR_RESPOND = 0, 1, 2
RDR_OK, RDR_ENOSPC, RDR_EINVAL = 0, -1, -2


class Request(ctypes.Structure):
    _fields_ = [("client", ctypes.c_char_p), ("client_len", ctypes.c_size_t),
                ("method", ctypes.c_char_p), ("method_len", ctypes.c_size_t),
                ("host", ctypes.c_char_p), ("host_len", ctypes.c_size_t),
                ("path", ctypes.c_char_p), ("path_len", ctypes.c_size_t)]


class Decision(ctypes.Structure):
    _fields_ = [("action", ctypes.c_int32), ("status", ctypes.c_int32), ("location_len", ctypes.c_size_t),
                ("provider", ctypes.c_int32), ("route", ctypes.c_int32), ("asn", ctypes.c_uint32),
                ("prefix_len", ctypes.c_int32), ("family", ctypes.c_int32), ("prefix", ctypes.c_uint8 * 16),
                ("provider_name", ctypes.c_char_p), ("region", ctypes.c_char_p),
                ("route_name", ctypes.c_char_p), ("target_host", ctypes.c_char_p)]


class Library:
    """The C ABI, one table at a time."""

    def __init__(self, path: Path = LIBRARY):
        lib = ctypes.CDLL(str(path))
        lib.rdr_open.restype = ctypes.c_void_p
        lib.rdr_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_close.argtypes = [ctypes.c_void_p]
        lib.rdr_decide.restype = ctypes.c_int
        lib.rdr_decide.argtypes = [ctypes.c_void_p, ctypes.POINTER(Request), ctypes.POINTER(Decision),
                                   ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_lookup.restype = ctypes.c_int32
        lib.rdr_lookup.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_provider_count.restype = ctypes.c_int32
        lib.rdr_provider_count.argtypes = [ctypes.c_void_p]
        lib.rdr_provider_name.restype = ctypes.c_char_p
        lib.rdr_provider_name.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.rdr_route_header_count.restype = ctypes.c_int32
        lib.rdr_route_header_count.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        self.lib = lib

    def open(self, path) -> tuple[int | None, str]:
        err = ctypes.create_string_buffer(1024)
        table = self.lib.rdr_open(str(path).encode(), err, len(err))
        return table, err.value.decode(errors="replace")

    def close(self, table) -> None:
        self.lib.rdr_close(table)

    def decide(self, table, client: bytes, method: bytes, path: bytes, host: bytes = b"mirror.test",
               buffer: int = 256) -> dict:
        """rdr_decide, retrying with the size it asks for; the Location as bytes."""
        request = Request(client, len(client), method, len(method), host, len(host), path, len(path))
        decision = Decision()
        buf = ctypes.create_string_buffer(buffer)
        rc = self.lib.rdr_decide(table, ctypes.byref(request), ctypes.byref(decision), buf, buffer)
        if rc == RDR_ENOSPC:
            size = decision.location_len + 1
            buf = ctypes.create_string_buffer(size)
            rc = self.lib.rdr_decide(table, ctypes.byref(request), ctypes.byref(decision), buf, size)
        return {"rc": rc, "action": decision.action, "status": decision.status,
                "location": buf.raw[:decision.location_len] if decision.action == RDR_REDIRECT else None,
                "target": decision.target_host or b"", "provider": decision.provider, "route": decision.route}


# --------------------------------------------------------------------------- snapshot surgery


def sections(data: bytes) -> list[tuple[str, int, int]]:
    count = struct.unpack_from("<I", data, 12)[0]
    out = []
    for i in range(count):
        tag, _, offset, length = struct.unpack_from("<4sIII", data, 64 + 16 * i)
        out.append((tag.decode(errors="replace"), offset, length))
    return out


def checksum(data: bytes) -> int:
    """SnapshotFormat.checksum: XXH64 of bytes 32..<size seeded with XXH64 (seed 0) of 0..<24."""
    import xxhash
    head = xxhash.xxh64_intdigest(data[0:24])
    return xxhash.xxh64_intdigest(data[32:], seed=head)


def reseal(data: bytearray) -> None:
    struct.pack_into("<Q", data, 16, len(data))
    struct.pack_into("<Q", data, 24, checksum(bytes(data)))


def location_problems(result: dict, targets: set[bytes]) -> list[str]:
    """The contract's invariants for one redirect."""
    if result["action"] != RDR_REDIRECT:
        return []
    location, target = result["location"], result["target"]
    out = []
    if not 300 <= result["status"] <= 399:
        out.append(f"redirect status {result['status']}")
    if targets and target not in targets:
        out.append(f"unconfigured target {target!r}")
    if not location.startswith(target):
        out.append(f"Location {location!r} does not start with {target!r}")
    elif len(location) > len(target) and location[len(target):len(target) + 1] not in (b"/", b"?"):
        out.append(f"Location {location!r} continues the host")
    if any(b <= 0x20 or b == 0x7F for b in location):
        out.append(f"Location {location!r} holds a control byte or space")
    return out


# --------------------------------------------------------------------------- checks

PROBE_CLIENTS = [b"192.0.2.10", b"192.0.2.200", b"198.51.100.5", b"198.51.100.70", b"203.0.113.9",
                 b"100.64.1.1", b"2001:db8:b::1", b"2001:db8:c::9", b"10.1.2.3", b"::ffff:192.0.2.10", b""]
PROBE_REQUESTS = [(b"GET", b"/v2/library/nginx/manifests/1.25"), (b"HEAD", b"/v2/a/blobs/sha256:00ff?x=1"),
                  (b"GET", b"/binaries/kubectl?arch=amd64"), (b"POST", b"/v2/a/blobs/uploads/"),
                  (b"GET", b"/v2/"), (b"GET", b"/v2/_catalog"), (b"GET", b"/index.html")]


def check_resealed(snapshot: Path, work: Path, count: int, seed: int) -> dict:
    """Random damage inside sections, checksum repaired: rdr_open rejects it with a message, or
    the table answers every probe within the contract."""
    lib = Library()
    base = bytearray(snapshot.read_bytes())
    reseal(base)
    work.write_bytes(base)
    table, err = lib.open(work)
    assert table, f"the resealed original does not load: {err}"
    targets = {lib.decide(table, c, m, p)["target"] for c in PROBE_CLIENTS for m, p in PROBE_REQUESTS} - {b""}
    lib.close(table)
    regions = sections(bytes(base))
    rng = random.Random(seed)
    rejected = accepted = 0
    reasons: dict[str, int] = {}
    problems: list[str] = []
    for _ in range(count):
        data = bytearray(base)
        tag, offset, length = regions[rng.randrange(len(regions))] if rng.random() < 0.9 else ("DIR", 64, 16 * len(regions))
        for _ in range(rng.randint(1, 3)):
            at = offset + rng.randrange(max(length, 1))
            if at < len(data):
                data[at] ^= 1 << rng.randrange(8)
        reseal(data)
        work.write_bytes(data)
        table, err = lib.open(work)
        if not table:
            rejected += 1
            assert str(work) in err and len(err) > len(str(work)) + 5, f"unclear message {err!r}"
            key = err.split(": ", 1)[1].split(" ")[0] if ": " in err else err
            reasons[key] = reasons.get(key, 0) + 1
            continue
        accepted += 1
        for client in PROBE_CLIENTS:
            for method, path in PROBE_REQUESTS:
                result = lib.decide(table, client, method, path)
                if result["rc"] != RDR_OK:
                    problems.append(f"{tag}: rdr_decide returned {result['rc']}")
                # damage may move a client to another provider or route, never to a host
                # outside the strings of the table, and never break the Location's shape
                problems += [f"{tag}: {p}" for p in location_problems(result, set())]
        lib.close(table)
    return {"checked": count, "rejected": rejected, "accepted": accepted, "reasons": reasons,
            "problems": problems[:20], "targets": sorted(t.decode() for t in targets)}


HOSTILE_METHODS = [b"GET", b"HEAD", b"", b"get", b"G\x00T", b"GET\r\nX-Injected: 1", b"X" * 10_000, b"\xff\xfe",
                   b"CONNECT", b"GET ", b"\x00"]
HOSTILE_PATHS = [
    b"/v2/a\r\nSet-Cookie: x=1/manifests/b", b"/v2/a\nLocation: https://evil.example/", b"/v2/a\x00b",
    b"/v2/a\tb", b"/v2/a b", b"/v2/\x7f", b"/v2/\x1b[31m", b"//evil.example/v2/x", b"http://evil.example/v2/x",
    b"https://evil.example", b"v2/x", b"", b"?", b"*", b"/v2/@evil.example", b"/v2/..%2f..%2fevil",
    b"/v2/%0d%0aSet-Cookie:%20x", b"\\\\evil.example/v2/", b"/\\evil.example", b"/v2/" + b"a" * 100_000,
    b"/v2/x?" + b"q" * 100_000, b"/v2/" + b"/" * 10_000, b"/v2/" + b"\xff" * 1000, b"/binaries/" + b"{" * 5000,
    b"/v2/" + b"a/blobs/" * 2000 + b"sha256:x", b"/v2/x?a\r\nb",
]
HOSTILE_CLIENTS = [b"192.0.2.10", b"192.0.2.10\x00", b"192.0.2.10\r\n", b"::ffff:192.0.2.10", b"[2001:db8:b::1]",
                   b"2001:db8:b::1%eth0", b"010.0.2.10", b"192.0.2.10:443", b"9" * 10_000, b"", b"\xff" * 40,
                   b"1.2.3.4, 192.0.2.10"]


def check_hostile(snapshot: Path) -> dict:
    """Hostile requests through rdr_decide: no redirect of an unsafe target, no control bytes in a
    Location, no unconfigured host, bounded time; compared with a plain request."""
    import time
    lib = Library()
    table, err = lib.open(snapshot)
    assert table, err
    safe = lib.decide(table, b"192.0.2.10", b"GET", b"/v2/x/manifests/y")
    targets = {safe["target"]}
    for client in PROBE_CLIENTS:
        for method, path in PROBE_REQUESTS:
            targets.add(lib.decide(table, client, method, path)["target"])
    targets.discard(b"")
    problems: list[str] = []
    count = 0
    slowest = 0.0
    for client in HOSTILE_CLIENTS:
        for method in HOSTILE_METHODS:
            for path in HOSTILE_PATHS:
                started = time.perf_counter()
                result = lib.decide(table, client, method, path)
                slowest = max(slowest, time.perf_counter() - started)
                count += 1
                if result["rc"] != RDR_OK:
                    problems.append(f"rc {result['rc']} for {client[:40]!r} {method[:20]!r} {path[:60]!r}")
                problems += [f"{p} for {path[:60]!r}" for p in location_problems(result, targets)]
                unsafe = not path.startswith(b"/") or any(b <= 0x20 or b == 0x7F for b in path)
                if unsafe and result["action"] == RDR_REDIRECT:
                    problems.append(f"redirected an unsafe target {path[:60]!r}")
                # a malformed client address never matches a provider
                if client not in (b"192.0.2.10", b"::ffff:192.0.2.10") and result["provider"] != -1:
                    problems.append(f"malformed client {client[:40]!r} matched provider {result['provider']}")
    # NULL and zero-length fields
    null = Request(None, 5, None, 3, None, 0, None, 9)
    decision = Decision()
    if lib.lib.rdr_decide(table, ctypes.byref(null), ctypes.byref(decision), None, 0) != RDR_OK or decision.action != RDR_PASS:
        problems.append("NULL fields with lengths were not a pass")
    if lib.lib.rdr_decide(None, ctypes.byref(null), ctypes.byref(decision), None, 0) != RDR_EINVAL:
        problems.append("NULL table was not RDR_EINVAL")
    for length in (0, 1, 3, 5, 15, 17, 1 << 20):
        lib.lib.rdr_lookup(table, b"\x00" * min(length, 32), length if length <= 32 else 0)
    lib.close(table)
    return {"requests": count, "slowest_ms": round(slowest * 1000, 3), "targets": sorted(t.decode() for t in targets),
            "problems": problems[:20]}


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "resealed":
        result = check_resealed(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]))
    elif len(argv) >= 2 and argv[0] == "hostile":
        result = check_hostile(Path(argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

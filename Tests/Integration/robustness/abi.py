"""The C ABI's robustness checks for test_robustness.py, run in a child process (a crash then
fails one test instead of killing pytest), through the test kit's binding (testkit.abi):

    python3 -m robustness.abi resealed SNAPSHOT WORK COUNT SEED   damaged sections with a repaired checksum
    python3 -m robustness.abi hostile SNAPSHOT                     hostile requests through rdr_decide

Each prints one JSON object with its counts and exits 1 (with the problems) when a check fails.
"""

from __future__ import annotations

import ctypes
import json
import random
import sys
import time
from pathlib import Path

from testkit import abi
from testkit.abi import RDR_EINVAL, RDR_OK, RDR_PASS, RDR_REDIRECT
from testkit.snapshots import reseal, sections


def decide(table: abi.Table, client: bytes, method: bytes, path: bytes) -> dict:
    """rdr_decide's outcome as the checks below read it (Location and target as bytes)."""
    decided = table.decide(client, method, path)
    d = decided.decision
    return {"rc": decided.rc, "action": d.action, "status": d.status, "location": decided.location,
            "target": d.target_host or b"", "provider": d.provider, "route": d.route}


def location_problems(result: dict, targets: set[bytes]) -> list[str]:
    """The contract's invariants for one redirect (one that failed, rc != RDR_OK, is reported by
    the caller)."""
    if result["action"] != RDR_REDIRECT or result["location"] is None:
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
    lib = abi.Library()
    base = bytearray(snapshot.read_bytes())
    reseal(base)
    work.write_bytes(base)
    table, err = lib.try_open(work)
    assert table, f"the resealed original does not load: {err}"
    targets = {decide(table, c, m, p)["target"] for c in PROBE_CLIENTS for m, p in PROBE_REQUESTS} - {b""}
    table.close()
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
        table, err = lib.try_open(work)
        if not table:
            rejected += 1
            assert str(work) in err and len(err) > len(str(work)) + 5, f"unclear message {err!r}"
            key = err.split(": ", 1)[1].split(" ")[0] if ": " in err else err
            reasons[key] = reasons.get(key, 0) + 1
            continue
        accepted += 1
        for client in PROBE_CLIENTS:
            for method, path in PROBE_REQUESTS:
                result = decide(table, client, method, path)
                if result["rc"] != RDR_OK:
                    problems.append(f"{tag}: rdr_decide returned {result['rc']}")
                # damage may move a client to another provider or route, never to a host
                # outside the strings of the table, and never break the Location's shape
                problems += [f"{tag}: {p}" for p in location_problems(result, set())]
        table.close()
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
    table = abi.Library().open(snapshot)
    safe = decide(table, b"192.0.2.10", b"GET", b"/v2/x/manifests/y")
    targets = {safe["target"]}
    for client in PROBE_CLIENTS:
        for method, path in PROBE_REQUESTS:
            targets.add(decide(table, client, method, path)["target"])
    targets.discard(b"")
    problems: list[str] = []
    count = 0
    slowest = 0.0
    for client in HOSTILE_CLIENTS:
        for method in HOSTILE_METHODS:
            for path in HOSTILE_PATHS:
                started = time.perf_counter()
                result = decide(table, client, method, path)
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
    null = abi.Request(None, 5, None, 3, None, 0, None, 9)
    decision = abi.Decision()
    c = table.c
    if c.rdr_decide(table.handle, ctypes.byref(null), ctypes.byref(decision), None, 0) != RDR_OK or decision.action != RDR_PASS:
        problems.append("NULL fields with lengths were not a pass")
    if c.rdr_decide(None, ctypes.byref(null), ctypes.byref(decision), None, 0) != RDR_EINVAL:
        problems.append("NULL table was not RDR_EINVAL")
    for length in (0, 1, 3, 5, 15, 17, 1 << 20):
        c.rdr_lookup(table.handle, b"\x00" * min(length, 32), length if length <= 32 else 0)
    table.close()
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

"""How a pool splits objects, through the C ABI: over N distinct paths (default 100,000), each
member's share next to its weight share, and, with one member marked down by a health state,
how many objects move (only the down member's should) and where they go.

    python3 Benchmarks/pools/split.py [N]

Uses the built CLI and library (scripts/build.sh) and the tests' independent state-file encoder.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "Tests" / "Conformance"), str(REPO / "Tests" / "Integration")]

import health_state as hs                      # noqa: E402
from testkit import paths                      # noqa: E402
from testkit.abi import Library                # noqa: E402

MEMBERS = {"https://a.example": 1, "https://b.example": 2, "https://c.example": 3}
CONFIG = "version: 1\npools:\n  files:\n    health: { path: /healthz }\n    members:\n" + "".join(
    f'      - {{ url: "{url}", weight: {weight} }}\n' for url, weight in MEMBERS.items()) + \
    "routes:\n  - { name: files, path: '/files/{name}', redirect: { to: { pool: files } } }\n"


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        config, snapshot = Path(work) / "pool.yaml", Path(work) / "pool.rdb"
        config.write_text(CONFIG)
        subprocess.run([str(paths.CLI), "compile", "-c", config, "-o", snapshot], check=True, capture_output=True)
        table = Library().open(snapshot)
        objects = [f"/files/object-{i}".encode() for i in range(count)]

        def members(health=None) -> list[str]:
            return [table.decide(b"192.0.2.1", b"GET", path, health=health).location.split(b"/files/")[0].decode()
                    for path in objects]

        before = members()
        shares = collections.Counter(before)
        total = sum(MEMBERS.values())
        print(f"{count} objects, weights {dict(MEMBERS)}")
        for url, weight in MEMBERS.items():
            share, expected = shares[url] / count, weight / total
            print(f"  {url}: {share:.4f} of the objects, weight share {expected:.4f}, relative error "
                  f"{abs(share - expected) / expected * 100:.2f}%")
        down = list(MEMBERS)[1]
        health = table.health()
        records = [hs.Record(hs.DOWN if url == down else hs.UP) for url in MEMBERS]
        rc, message = health.load(hs.encode(records, fingerprint_value=hs.fingerprint(list(MEMBERS), "/healthz")))
        assert rc == 0, message
        moved = [(old, new) for old, new in zip(before, members(health)) if old != new]
        print(f"  {down} down: {len(moved)} objects moved ({len(moved) / count * 100:.2f}%); it had {shares[down]}; "
              f"moved from other members: {sum(1 for old, _ in moved if old != down)}")
        for url, weight in MEMBERS.items():
            if url != down:
                got = sum(1 for _, new in moved if new == url) / max(len(moved), 1)
                print(f"    to {url}: {got:.3f} of them (weight share among the rest {weight / (total - MEMBERS[down]):.3f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

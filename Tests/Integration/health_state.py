"""The health-state file format, written here from its documentation (HealthState.swift) and not
from the Swift encoder, so that the tests that load these files check the decoder against an
independent oracle; and the policy these tests decide with: one pool of three mirrors with
health checks, and a route that looks at a request header.

Layout (little endian): magic "RDRHLTH\\0", u32 version, u32 member count, u64 health fingerprint,
i64 written at (Unix ms), i64 stale after (ms), 16-byte records (state u8, failure u8, status u16,
latency µs u32, since ms i64), then per member an error (u16 length + UTF-8), then XXH64 (seed 0)
of every byte before it. The fingerprint is XXH64, seeded with the member count, of each member's
URL and health-check URL, each followed by a NUL, in slot order.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import xxhash

MAGIC = b"RDRHLTH\0"
VERSION = 1
UNCHECKED, UP, DOWN = 0, 1, 2
FAIL_NONE, FAIL_TIMEOUT, FAIL_CONNECT, FAIL_STATUS, FAIL_OTHER = range(5)

# The pool, in slot order (a named pool's members are numbered in config order).
MEMBERS = ["https://a.mirror.test", "https://b.mirror.test", "https://c.mirror.test"]
HEALTH_PATH = "/healthz"
CLIENT = "192.0.2.10"          # eu-west-1 of provider "cloud"
PIN_HEADER = "x-mirror-pin"    # the header route: `X-Mirror-Pin: origin` passes

CONFIG = f"""version: 1
pools:
  eu:
    health: {{ path: {HEALTH_PATH}, interval: 1s, timeout: 500ms, rise: 1, fall: 1 }}
    members:
{''.join(f'      - {{ url: "{url}" }}{chr(10)}' for url in MEMBERS)}providers:
  - name: cloud
    registry: {{ pool: eu }}
    sources: [{{ format: csv, path: cloud.csv }}]
routes:
  - name: pinned
    path: /v2/{{rest...}}
    headers: {{ {PIN_HEADER}: {{ exact: origin }} }}
    pass: true
  - name: registry
    path: /v2/{{rest...}}
    clients: matched
    redirect: {{ to: registry }}
"""


def write_policy(directory: Path) -> Path:
    """The policy and its prefix list in `directory`; returns the config path."""
    (directory / "cloud.csv").write_text("prefix,provider,region\n192.0.2.0/24,cloud,eu-west-1\n")
    config = directory / "health.yaml"
    config.write_text(CONFIG)
    return config


def fingerprint(members: list[str] = MEMBERS, health_path: str | None = HEALTH_PATH) -> int:
    text = b""
    for url in members:
        text += url.encode() + b"\0"
        if health_path is not None:
            text += (url.rstrip("/") + health_path).encode()
        text += b"\0"
    return xxhash.xxh64_intdigest(text, seed=len(members))


def fingerprint_of(members: list[tuple[str, str | None]]) -> int:
    """The health fingerprint of any pools: `members` in slot order, each (URL, the URL its health
    check probes — None for a member without a check). `fingerprint()` is this for MEMBERS."""
    text = b""
    for url, check in members:
        text += url.encode() + b"\0" + (check.encode() if check is not None else b"") + b"\0"
    return xxhash.xxh64_intdigest(text, seed=len(members))


@dataclass
class Record:
    state: int = UP
    failure: int = FAIL_NONE
    status: int = 200
    latency_us: int = 1500
    since_ms: int = 0
    error: str = ""


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(records: list[Record], *, written_ms: int | None = None, stale_after_ms: int = 10_000,
           fingerprint_value: int | None = None, version: int = VERSION, member_count: int | None = None) -> bytes:
    """A state file's bytes."""
    written_ms = now_ms() if written_ms is None else written_ms
    count = len(records) if member_count is None else member_count
    fp = fingerprint() if fingerprint_value is None else fingerprint_value
    out = MAGIC + struct.pack("<IIQqq", version, count, fp, written_ms, stale_after_ms)
    for r in records:
        out += struct.pack("<BBHIq", r.state, r.failure, r.status, r.latency_us, r.since_ms)
    for r in records:
        error = r.error.encode()[:200]
        out += struct.pack("<H", len(error)) + error
    return seal(out)


def seal(body: bytes) -> bytes:
    """`body` followed by its checksum."""
    return body + struct.pack("<Q", xxhash.xxh64_intdigest(body))


def state(down: set[int] = frozenset(), **options) -> bytes:
    """A fresh state of the three members with the slots in `down` down."""
    records = [Record(DOWN, FAIL_CONNECT, 0, 0, now_ms() - 5000, "connect: connection refused") if slot in down
               else Record(UP) for slot in range(len(MEMBERS))]
    return encode(records, **options)

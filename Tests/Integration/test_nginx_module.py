"""ngx_http_redirector_module in Debian's nginx: every conformance suite case, the example
config's decisions and access log, composition, variables, reloads, errors.

Run: scripts/build-library.sh && scripts/build-nginx-module.sh &&
     python3 -m pytest Tests/Integration/test_nginx_module.py
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from suite_cases import (always_decided, answer_problems, ask, assert_backend_passes, example_carries, log_problems,
                         without_presence_checks)
from testkit.fixtures import AWS, AWS2, MANIFEST
from testkit.http import exchange, request
from testkit.paths import FIXTURES, MODULE_DIR, NDK_MODULE
from testkit.processes import run
from testkit.snapshots import replace_atomically
from testkit.traffic import Traffic

MINIMAL = FIXTURES / "minimal.conf"


def test_every_suite_case_passes(suite_results, nginx_module):
    """The conformance suites on the module (the harness's config: `redirector on`, realip from the
    suite's trusted proxies, the decision in a debug header)."""
    assert_backend_passes(suite_results("nginx-module"), "nginx-module")


def test_module_is_binary_compatible_and_finds_library_by_origin(nginx_module):
    dyn = run(["readelf", "-d", nginx_module]).stdout
    assert "libredirector.so" in dyn
    assert "$ORIGIN" in dyn, dyn
    assert (MODULE_DIR / "libredirector.so").exists()


def test_example_decides_and_logs_every_suite_case(nginx, nginx_module, suites, compiled_suites):
    """examples/nginx/nginx.conf, trusting each suite's proxies, answers every case it can carry as
    the suite expects, and its JSON access log explains each decision (the module's variables)."""
    snapshots, _ = compiled_suites
    problems, logged = [], 0
    for suite in without_presence_checks(suites):
        server = nginx.example("module", snapshots[suite.name], trusted=suite.trusted_proxies)
        cases = [c for c in suite.cases if example_carries(c, suite, "module")]
        decided = [c for c in cases if always_decided(c, "module")]
        answers = [ask(server.port, suite, case, "module") for case in decided]
        logged += len(answers)
        entries = server.wait_access_entries(len(answers))
        assert len(entries) == len(answers), f"{suite.name}: {len(entries)} log entries for {len(answers)} requests"
        for answer, entry in zip(answers, entries):
            problems += answer_problems(answer) + log_problems(answer, entry)
        # The rest may be refused before any decision (no log check).
        for case in cases:
            if case not in decided:
                problems += answer_problems(ask(server.port, suite, case, "module"))
        server.stop()
    assert logged >= 150, f"only {logged} cases with a log entry checked"
    assert not problems, "\n".join(problems)


def test_composition_with_set_redirector_target(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    # /binaries/ has `redirector off` and answers from $mirror itself (with a cache header)
    resp = request(server.port, "GET", "/binaries/kubectl", client="198.51.100.5")
    assert resp.status == 307
    assert resp.location == "https://artifacts.gcp.test/mirror/binaries/kubectl"
    assert resp.header("Cache-Control") == "public, max-age=300"
    # no target: the origin answers
    resp = request(server.port, "GET", "/binaries/kubectl", client="10.1.2.3")
    assert resp.status == 200 and resp.body == b"origin GET /binaries/kubectl\n"


def test_redirector_off_still_explains_in_variables(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    resp = request(server.port, "GET", "/healthz", client="192.0.2.10")
    assert resp.status == 200 and resp.body == b"origin GET /healthz\n"
    [entry] = server.wait_access_entries(1)
    assert entry["provider"] == "aws" and entry["prefix"] == "192.0.2.0/24"
    assert entry["action"] == "pass" and entry["target"] == ""
    # $redirector_source: the file the matched prefix came from, by its path relative to the
    # config (fixtures/main.yaml reads fixtures/prefixes.csv).
    assert entry["source"] == "prefixes.csv"


@pytest.mark.parametrize("which", ["garbage", "corrupt", "missing"])
def test_nginx_t_fails_on_bad_snapshot(nginx, nginx_module, snapshots, which):
    server = nginx.example("module", snapshots["main"], start=False)
    server.use_snapshot(snapshots.get(which))  # "missing": no file at all
    result = server.test_config()
    assert result.returncode != 0
    assert "[emerg]" in result.stderr
    assert f'redirector_snapshot "{server.snapshot}"' in result.stderr, result.stderr
    assert "cannot be loaded: " in result.stderr
    reason = result.stderr.split("cannot be loaded: ", 1)[1].split(" in ")[0]
    assert reason.strip(), "no reason given"
    server.allowed_log.append("cannot be loaded")


def test_reload_switches_snapshot_without_failed_requests(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    assert request(server.port, "GET", MANIFEST, client="192.0.2.10").location == AWS + MANIFEST

    traffic = Traffic(lambda: request(server.port, "GET", MANIFEST, client="192.0.2.10", timeout=5), threads=4)
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
        traffic.stop()

    assert not traffic.errors, traffic.errors[:5]
    assert set(traffic.outcomes()) <= {(302, AWS + MANIFEST), (308, AWS2 + MANIFEST)}
    late = traffic.outcomes(after=switched + 0.05)
    assert late and set(late) == {(308, AWS2 + MANIFEST)}
    assert len(traffic.answers) > 50


def test_bad_snapshot_reload_keeps_old_workers(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    server.allowed_log.append("cannot be loaded")
    old = server.worker_pids()
    replace_atomically(snapshots["corrupt"], server.snapshot)

    # `nginx -s reload` parses the configuration first and refuses
    reload = server.reload()
    assert reload.returncode != 0 and "cannot be loaded" in reload.stderr

    # a SIGHUP straight to the master: the new cycle fails, old workers keep serving
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "cannot be loaded" not in server.error_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cannot be loaded" in server.error_text()
    time.sleep(0.3)
    assert server.worker_pids() == old
    for _ in range(20):
        resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
        assert (resp.status, resp.location) == (302, AWS + MANIFEST)

    # a good snapshot afterwards is picked up again
    replace_atomically(snapshots["alt"], server.snapshot)
    assert server.reload().returncode == 0
    server.wait_new_workers(old)
    resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (308, AWS2 + MANIFEST)


def test_module_and_library_installed_together_elsewhere(nginx, nginx_module, snapshots, tmp_root):
    """Like /usr/lib/nginx/modules: both files in one directory found via rpath $ORIGIN."""
    moddir = Path(tmp_root) / f"modules-{os.getpid()}-{time.monotonic_ns()}"
    moddir.mkdir()
    moddir.chmod(0o755)
    for name in ("ngx_http_redirector_module.so", "libredirector.so"):
        shutil.copy2(MODULE_DIR / name, moddir / name)
    server = nginx.example("module", snapshots["main"], module_dir=moddir)
    env_free = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert env_free.location == AWS + MANIFEST
    assert "LD_LIBRARY_PATH" not in os.environ


def _minimal(nginx, load_modules: str, http: str, server: str = ""):
    return nginx.from_template(MINIMAL, {"LOAD_MODULES": load_modules, "HTTP": http, "SERVER": server})


def _load(ndk: bool = True) -> str:
    lines = [f"load_module {NDK_MODULE};"] if ndk else []
    lines.append(f"load_module {MODULE_DIR / 'ngx_http_redirector_module.so'};")
    return "\n".join(lines)


def test_set_redirector_target_with_fallback(nginx, nginx_module, snapshots):
    server = _minimal(nginx, _load(), f"redirector_snapshot {snapshots['main']};",
        'location / { set_redirector_target $t "none"; set_redirector_target $u;\n'
        '  return 200 "t=$t u=$u p=$redirector_provider a=$redirector_action '
        's=$redirector_status\\n"; }')
    server.start()
    resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert resp.body == f"t={AWS + MANIFEST} u={AWS + MANIFEST} p=aws a=redirect s=302\n".encode()
    resp = request(server.port, "GET", MANIFEST, client="10.1.2.3")
    assert resp.body == b"t=none u= p= a=pass s=\n"


@pytest.mark.parametrize("load,http,server,message", [
    (True, "", "redirector on;", '"redirector" and "set_redirector_target" require'),
    (True, "", "location / { set_redirector_target $t; }", "require \"redirector_snapshot\""),
    (False, "@SNAP@", "location / { set_redirector_target $t; }", "requires the NDK"),
    (True, "@SNAP@ @SNAP@", "", "is duplicate"),
])
def test_directive_errors(nginx, nginx_module, snapshots, load, http, server, message):
    http = http.replace("@SNAP@", f"redirector_snapshot {snapshots['main']};")
    s = _minimal(nginx, _load(load), http, server)
    result = s.test_config()
    assert result.returncode != 0
    assert "[emerg]" in result.stderr and message in result.stderr, result.stderr
    s.allowed_log.append(message)


def test_module_loads_without_the_ndk(nginx, nginx_module, snapshots):
    """Only set_redirector_target needs the NDK; its symbols are weak references."""
    server = _minimal(nginx, _load(ndk=False), f"redirector_snapshot {snapshots['main']};",
                      "redirector on; location / { stub_status; }")
    server.start()
    resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (302, AWS + MANIFEST)
    resp = request(server.port, "GET", MANIFEST, client="10.1.2.3")
    assert resp.status == 200 and b"Active connections" in resp.body


def test_module_without_snapshot_is_inert(nginx, nginx_module):
    server = _minimal(nginx, _load(), "",
                      'location / { return 200 "[$redirector_action][$redirector_provider]\\n"; }')
    server.start()
    assert request(server.port, "GET", MANIFEST, client="192.0.2.10").body == b"[][]\n"


def test_hostile_requests_do_not_crash_workers(nginx, nginx_module, snapshots):
    server = nginx.example("module", snapshots["main"])
    old = server.worker_pids()
    long_path = "/v2/" + "a" * 7000 + "/manifests/x"
    resp = request(server.port, "GET", long_path, client="192.0.2.10")
    assert resp.status == 302 and resp.location == AWS + long_path
    targets = [b"/v2/\x01/x", b"/v2/%00", b"*", b"v2/x", b"/v2/" + b"%" * 100,
               b"/" + b"\xff" * 200, b"/v2/x?" + b"&" * 3000]
    for t in targets:
        request(server.port, "GET", t, client="192.0.2.10")
    for client in ["", " ", "1.2.3.4.5", "::ffff:", "fe80::1%eth0", "[::1]", "9" * 300,
                   "192.0.2.10:80", ", , ,", "2001:db8:b::1/48"]:
        resp = request(server.port, "GET", MANIFEST, client=client)
        assert resp.status in (200, 302), (client, resp.status)
    for method in ["PUT", "DELETE", "OPTIONS", "PATCH", "X" * 30]:
        resp = request(server.port, method, MANIFEST, client="192.0.2.10")
        assert resp.status in (405, 400, 200), (method, resp.status)
    assert server.worker_pids() == old, "a worker died"


def test_keepalive_pipeline_with_request_body(nginx, nginx_module, snapshots):
    """A fixed answer discards the request body; the connection stays usable."""
    server = nginx.example("module", snapshots["main"])
    body = b"x" * 100_000
    head = b"Host: mirror.test\r\nX-Forwarded-For: 192.0.2.10\r\n"
    data = (b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\n" + head
            + b"Content-Length: %d\r\n\r\n" % len(body) + body
            + b"GET /v2/a/manifests/b HTTP/1.1\r\n" + head + b"\r\n"
            + b"GET /v2/ HTTP/1.1\r\n" + head + b"Connection: close\r\n\r\n")
    received = exchange(server.port, data)
    statuses = [line.split(b" ")[1] for line in received.split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [b"405", b"302", b"200"], received[:500]
    assert b"Location: https://registry.aws.test/v2/a/manifests/b\r\n" in received

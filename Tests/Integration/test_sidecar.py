"""`redirector serve` against real proxies on loopback: Envoy 1.40 (ext_authz HTTP), Caddy
(forward_auth), Traefik (ForwardAuth), nginx (auth_request), and the standalone redirector.

Every conformance suite case goes through every sidecar mode and every proxy (the harness's
backends, started from the shipped examples); here, the loopback clients' own addresses decide
through each proxy as `redirector decide` says; spoofed X-Forwarded-For from an untrusted client
is ignored; a stopped sidecar gives each proxy's configured failure answer; reloads under traffic
lose nothing and a corrupt snapshot keeps the old one (visible in /readyz and /metrics). The
address plan is in testkit/fixtures.py. Run: `pytest Tests/Integration/test_sidecar.py` after
`swift build -c release`.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from conformance.check import Observation, project, wire_problems
from conformance.suite import Expect
from suite_cases import assert_backend_passes
from testkit.fixtures import (AWS, AWS_CLIENT, BALANCER, GCP_CLIENT, LOOPBACK_PREFIXES, MANIFEST, NO_PROVIDER_CLIENT,
                              SIDECAR_TRUST, fixture_policy)
from testkit.http import free_port, request, wait_http
from testkit.origin import ORIGIN_HEADER, Origin, origin_body
from testkit.processes import run
from testkit import paths, proxies
from testkit.proxies import PROXIES, start_proxy
from testkit.sidecar import Sidecar
from testkit.snapshots import cli_decide, compile_snapshot, replace_atomically
from testkit.traffic import Traffic

LOOPBACK_CASES = [  # (client source address, method, path)
    (AWS_CLIENT, "GET", MANIFEST),
    (AWS_CLIENT, "HEAD", "/v2/pause/blobs/sha256:0123abcd?x=1"),
    (GCP_CLIENT, "GET", "/binaries/kubectl/v1.30.0/bin/linux/amd64/kubectl?arch=amd64"),
    (GCP_CLIENT, "GET", "/v2/_catalog"),
    (AWS_CLIENT, "POST", "/v2/library/nginx/blobs/uploads/"),
    (AWS_CLIENT, "GET", "/v2/"),
    (AWS_CLIENT, "GET", "/index.html"),
    (NO_PROVIDER_CLIENT, "GET", MANIFEST),
]
SIDECAR_BACKENDS = ["sidecar-ext-authz", "sidecar-forward-auth", "sidecar-auth-request", "sidecar-standalone",
                    "envoy", "caddy", "traefik", "nginx-auth-request"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_root) -> Path:
    path = tmp_root / "sidecar"
    path.mkdir(exist_ok=True)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def sidecar_snapshots(cli, work) -> dict[str, Path]:
    """'main': fixtures/main.yaml + loopback clients; 'next': the same with another aws registry
    (tells a reloaded snapshot apart); 'corrupt': main with one byte flipped."""
    main = compile_snapshot(fixture_policy(work, "main", LOOPBACK_PREFIXES), work / "main.rdb")
    nxt = compile_snapshot(fixture_policy(work, "next", LOOPBACK_PREFIXES, aws_registry="registry-next.aws.test"),
                           work / "next.rdb")
    corrupt = work / "corrupt.rdb"
    data = bytearray(main.read_bytes())
    data[len(data) // 3] ^= 0x5A
    corrupt.write_bytes(bytes(data))
    return {"main": main, "next": nxt, "corrupt": corrupt}


@pytest.fixture(scope="module")
def oracle(sidecar_snapshots):
    """`redirector decide --json` on the main snapshot, cached."""
    cache: dict = {}

    def decide(client: str, method: str, path: str) -> dict:
        key = (client, method, path)
        if key not in cache:
            cache[key] = cli_decide(sidecar_snapshots["main"], client, method, path)
            assert cache[key] is not None, f"redirector decide refused {key}"
        return cache[key]

    return decide


@pytest.fixture(scope="module")
def upstream():
    server = Origin()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(sidecar_snapshots, work):
    """One sidecar (auto + standalone listeners) serving a private copy of the main snapshot."""
    path = work / "serving.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    standalone = free_port()
    # --max-source-age 1ms: every source is older than that at startup, so each is warned about once.
    server = Sidecar(path, work / "sidecar.log", trusted=SIDECAR_TRUST,
                     extra_args=["--listen", f"standalone=127.0.0.1:{standalone}", "--max-source-age", "1ms"])
    server.standalone_port = standalone
    server.start()
    yield server
    code = server.stop()
    assert code == 0, f"sidecar exit status {code} on SIGTERM:\n{server.log_text()[-3000:]}"


@pytest.fixture(scope="module")
def proxy_factory(work):
    """Starts a proxy (testkit.proxies) trusting the balancer; returns its port. All are stopped at
    the end of the module, and their logs must show no alert or crash."""
    started = []

    def start(kind: str, name: str, sidecar_port: int, upstream_port: int, **options) -> int:
        if proxies.missing(kind):
            pytest.skip("; ".join(proxies.missing(kind)))
        started.append(start_proxy(kind, work, name, sidecar_port, upstream_port, trusted=[BALANCER + "/32"], **options))
        return started[-1].port

    yield start
    problems = []
    for process in started:
        process.stop()
        problems += process.problems()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def front(proxy_factory, sidecar, upstream):
    """`front(kind)`: the port of a proxy of that kind in front of the shared sidecar (one each)."""
    ports: dict[str, int] = {}

    def port(kind: str) -> int:
        if kind not in ports:
            ports[kind] = proxy_factory(kind, "main", sidecar.port, upstream.port)
        return ports[kind]
    return port


def spoof_is_ignored(port: int):
    """A client of no provider claiming an aws address in X-Forwarded-For is served as itself."""
    resp = request(port, "GET", MANIFEST, source=NO_PROVIDER_CLIENT, headers={"X-Forwarded-For": "192.0.2.10"})
    assert resp.status == 200 and resp.location is None, (resp.status, resp.location)
    assert resp.body == origin_body("GET", MANIFEST)
    resp = request(port, "GET", MANIFEST, source=NO_PROVIDER_CLIENT,
                   headers={"X-Real-IP": "192.0.2.10", "x-envoy-external-address": "192.0.2.10",
                            "X-Forwarded-For": "192.0.2.10, 127.0.0.1"})
    assert resp.status == 200 and resp.location is None, (resp.status, resp.location)


# --------------------------------------------------------------------------- every suite case


@pytest.mark.parametrize("backend", SIDECAR_BACKENDS)
def test_every_suite_case_passes(suite_results, backend):
    """The conformance suites on the sidecar in each mode (the harness playing the proxy) and
    behind each real proxy (the shipped example configs)."""
    assert_backend_passes(suite_results(backend), backend)


# --------------------------------------------------------------------------- the sidecar itself


def test_untrusted_peer_cannot_choose_its_address(sidecar, oracle):
    # Directly from an untrusted address: all forwarding headers are ignored.
    resp = request(sidecar.port, "GET", "/ext_authz" + MANIFEST, source=NO_PROVIDER_CLIENT,
                   headers={"X-Forwarded-For": "192.0.2.10", "X-Real-IP": "192.0.2.10",
                            "x-envoy-external-address": "192.0.2.10"})
    assert resp.status == 200 and resp.location is None
    # The peer itself decides: 127.0.0.2 belongs to aws.
    resp = request(sidecar.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT,
                   headers={"X-Forwarded-For": "10.0.0.1"})
    assert (resp.status, resp.location) == (302, oracle(AWS_CLIENT, "GET", MANIFEST)["location"])


def test_operations_endpoints(sidecar, sidecar_snapshots):
    assert request(sidecar.port, "GET", "/healthz").body == b"ok\n"
    status, ready = sidecar.readyz()
    assert status == 200 and ready["ready"] is True
    assert ready["snapshot"]["prefixes_v4"] > 0
    metrics = sidecar.metrics()
    assert metrics['redirector_ready'] == 1
    assert metrics["redirector_snapshot_age_seconds"] >= 0
    assert 'redirector_decisions_total{provider="aws",outcome="redirect"}' in metrics
    assert metrics["redirector_decision_duration_seconds_count"] > 0
    assert request(sidecar.port, "GET", "/nope").status == 404
    records = sidecar.log_records()
    assert any(r.get("msg") == "snapshot loaded" and r.get("reason") == "startup" for r in records)


def test_source_age_metric_moves_and_stale_sources_are_logged(sidecar, sidecar_snapshots):
    """redirector_source_age_seconds: one gauge per source of the snapshot (`inspect --provenance
    --json` lists them), measured at scrape time, so it grows between scrapes; with
    --max-source-age each source older than that is warned about on load."""
    provenance = json.loads(run([paths.CLI, "inspect", "--provenance", "--json", sidecar_snapshots["main"]]).stdout)
    since = {source["name"]: source["dataTime"] for source in provenance["sources"]}
    names = sorted(since)
    assert names, provenance
    ages = lambda metrics: {key: value for key, value in metrics.items() if key.startswith("redirector_source_age_seconds{")}
    first = ages(sidecar.metrics())
    assert sorted(re.search(r'source="([^"]*)"', key).group(1) for key in first) == names
    time.sleep(2.2)
    second = ages(sidecar.metrics())
    assert first.keys() == second.keys()
    for key, value in second.items():
        assert 2.0 <= value - first[key] <= 4.0, (key, first[key], value)
        # Measured from the time inspect reports (publisher date, else fetch, else compile time).
        assert abs(value - (time.time() - since[re.search(r'source="([^"]*)"', key).group(1)])) <= 3, (key, value)
    warned = [r for r in sidecar.log_records() if r.get("msg") == "source older than the maximum age"]
    assert sorted({r["source"] for r in warned}) == names and all(r["maximum_seconds"] == "0" for r in warned)


# --------------------------------------------------------------------------- behind each proxy


@pytest.mark.parametrize("kind", PROXIES)
def test_proxy_lets_client_addresses_decide(front, oracle, kind):
    """Clients connecting from their own (loopback) addresses get, through the proxy, what
    `redirector decide` says for them; allowed requests reach the origin unchanged."""
    port = front(kind)
    problems = []
    for source, method, path in LOOPBACK_CASES:
        decision = oracle(source, method, path)
        expect = Expect(decision["action"], decision["status"], decision["location"], dict(decision["headers"]))
        resp = request(port, method, path, source=source)
        obs = Observation(status=resp.status, location=resp.location, headers=resp.headers,
                          origin=resp.header(ORIGIN_HEADER) is not None)
        problems += [f"{kind} {source} {method} {path}: {p}" for p in wire_problems(obs, project(expect, "auth-proxy"))]
        if obs.origin and method != "HEAD" and resp.body != origin_body(method, path):
            problems.append(f"{kind} {source} {method} {path}: body {resp.body[:100]!r}, want the origin's")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", PROXIES)
def test_proxy_ignores_spoofed_forwarded_for(front, kind):
    spoof_is_ignored(front(kind))


def test_envoy_relays_route_answers_and_reaches_origin(front, upstream):
    port = front("envoy")
    before = len(upstream.seen)
    resp = request(port, "GET", "/v2/", source=AWS_CLIENT)
    assert resp.status == 200 and resp.body == origin_body("GET", "/v2/")
    assert len(upstream.seen) == before + 1 and upstream.seen[-1][1] == "/v2/"
    assert request(port, "DELETE", "/v2/x/manifests/y", source=AWS_CLIENT).status == 405


DOWN = {  # what each proxy answers when the sidecar is down: (status, served by the origin)
    "envoy-fail-open": ("envoy", {"failure_mode_allow": True}, 200, True),     # the origin serves
    "envoy-fail-closed": ("envoy", {"failure_mode_allow": False}, 503, False),  # status_on_error
    "caddy": ("caddy", {}, 502, False),
    "traefik": ("traefik", {}, 500, False),
    "nginx": ("nginx", {}, 200, True),                                          # error_page 500 = @origin
}


@pytest.mark.parametrize("name", DOWN)
def test_proxy_with_sidecar_down(proxy_factory, upstream, name):
    kind, options, status, served_by_origin = DOWN[name]
    port = proxy_factory(kind, f"down-{name}", free_port(), upstream.port, **options)
    resp = request(port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == status and resp.location is None, (resp.status, resp.location)
    if served_by_origin:
        assert resp.body == origin_body("GET", MANIFEST)


# --------------------------------------------------------------------------- reloads and shutdown


def test_reload_under_traffic_loses_no_request(proxy_factory, sidecar_snapshots, work, upstream):
    path = work / "reload.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    server = Sidecar(path, work / "sidecar-reload.log", trusted=SIDECAR_TRUST).start()
    try:
        port = proxy_factory("envoy", "reload", server.port, upstream.port)
        old = AWS + MANIFEST
        new = "https://registry-next.aws.test" + MANIFEST
        traffic = Traffic(lambda: request(port, "GET", MANIFEST, source=AWS_CLIENT, timeout=5), threads=4)
        try:
            for i in range(6):  # alternate file replacement (poll) and SIGHUP
                time.sleep(0.4)
                replace_atomically(sidecar_snapshots["next" if i % 2 == 0 else "main"], path)
                if i % 3 == 2:
                    server.signal(signal.SIGHUP)
            time.sleep(0.6)
        finally:
            traffic.stop()
        assert not traffic.errors, traffic.errors[:5]
        assert len(traffic.answers) > 50, f"only {len(traffic.answers)} requests"
        assert not traffic.problems({(302, old), (302, new)}), traffic.problems({(302, old), (302, new)})
        assert (302, new) in traffic.outcomes() and (302, old) in traffic.outcomes(), "both snapshots served"
        status, ready = server.readyz()
        assert status == 200 and ready["reloads"] >= 4 and ready["reload_failures"] == 0
    finally:
        assert server.stop() == 0


def test_corrupt_snapshot_keeps_the_old_one(sidecar_snapshots, work, oracle):
    path = work / "corrupt-reload.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    server = Sidecar(path, work / "sidecar-corrupt.log", trusted=SIDECAR_TRUST).start()
    try:
        want = oracle(AWS_CLIENT, "GET", MANIFEST)["location"]
        replace_atomically(sidecar_snapshots["corrupt"], path)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.readyz()[1]["reload_failures"] < 1:
            time.sleep(0.05)
        status, ready = server.readyz()
        assert status == 200 and ready["ready"] is True, "the old snapshot keeps serving"
        assert ready["reload_failures"] >= 1 and "checksum" in (ready["last_reload_error"] or "")
        metrics = server.metrics()
        assert metrics["redirector_snapshot_reload_failures_total"] >= 1
        assert metrics['redirector_snapshot_reloads_total{result="failure"}'] >= 1
        assert metrics["redirector_snapshot_last_reload_success"] == 0
        resp = request(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT)
        assert (resp.status, resp.location) == (302, want)
        failures = metrics["redirector_snapshot_reload_failures_total"]
        time.sleep(0.6)  # several polls: the same bad file is not retried
        assert server.metrics()["redirector_snapshot_reload_failures_total"] == failures
        assert any(r.get("msg") == "snapshot rejected" and r.get("level") == "error" for r in server.log_records())
        # A good file again: recovered.
        replace_atomically(sidecar_snapshots["main"], path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.readyz()[1]["last_reload_error"] is not None:
            time.sleep(0.05)
        assert server.readyz()[1]["last_reload_error"] is None
        assert server.metrics()["redirector_snapshot_last_reload_success"] == 1
    finally:
        assert server.stop() == 0


def test_graceful_shutdown_finishes_in_flight_requests(sidecar_snapshots, work):
    server = Sidecar(sidecar_snapshots["main"], work / "sidecar-shutdown.log", trusted=SIDECAR_TRUST,
                     extra_args=["--shutdown-delay", "1s"]).start()
    stop, results, errors = threading.Event(), [], []

    def direct():
        while not stop.is_set():
            try:
                resp = request(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT, timeout=5)
                results.append(resp.status)
            except OSError as e:
                errors.append(repr(e))
                return

    workers = [threading.Thread(target=direct) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)
    status = request(server.port, "GET", "/readyz").status
    stop.set()
    for w in workers:
        w.join(20)
    assert status == 503, "not ready during the shutdown delay"
    assert set(results) == {302}, set(results)
    assert server.proc.wait(20) == 0
    records = server.log_records()
    assert any(r.get("msg") == "stopped" for r in records), records[-5:]


def test_missing_snapshot_is_not_ready_until_it_appears(sidecar_snapshots, work):
    path = work / "late.rdb"
    path.unlink(missing_ok=True)
    server = Sidecar(path, work / "sidecar-late.log", trusted=SIDECAR_TRUST,
                     extra_args=["--allow-missing-snapshot"]).start(ready=False)
    try:
        assert server.readyz()[0] == 503
        assert request(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT).status == 200
        replace_atomically(sidecar_snapshots["main"], path)
        wait_http(server.port, "/readyz", 200, timeout=10)
        assert request(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT).status == 302
    finally:
        server.stop()


def test_bad_snapshot_at_startup_fails_fast(sidecar_snapshots, work):
    proc = run([paths.CLI, "serve", "--snapshot", sidecar_snapshots["corrupt"], "--listen", f"127.0.0.1:{free_port()}"],
               check=False, timeout=30)
    assert proc.returncode != 0
    assert "checksum" in proc.stderr


def test_environment_configuration(sidecar_snapshots, work):
    port = free_port()
    server = Sidecar(sidecar_snapshots["main"], work / "sidecar-env.log", trusted=[], port=port,
                     env={"REDIRECTOR_TRUSTED_PROXIES": "127.0.0.1/32", "REDIRECTOR_EXPLAIN": "1",
                          "REDIRECTOR_EXT_AUTHZ_PREFIX": "/check"})
    server.start()
    try:
        resp = request(port, "GET", "/check" + MANIFEST, headers={"X-Forwarded-For": "198.51.100.5"})
        assert resp.status == 302 and resp.location == "https://registry.gcp.test" + MANIFEST
        assert "provider=gcp" in resp.header("X-Redirector-Explain")
        assert request(port, "GET", "/ext_authz" + MANIFEST).status == 404
    finally:
        server.stop()

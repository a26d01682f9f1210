"""Mirror failover with real mirrors: plain nginx static servers on loopback serving one generated
file tree, a pool of them with HTTP health checks, and a steady stream of downloads that follow
redirects and verify checksums. One mirror is stopped, kept down, and started again, behind each
backend (NGINX module, Lua binding, sidecar behind Envoy, standalone sidecar).

What is asserted: every download arrives intact except those whose decision fell inside the
detection window (the mirror died, the prober had not yet seen `fall` failures and published
them); those failures all lie in [stop, stop + interval × fall + timeout + propagation], and
traffic returns to the mirror within interval × rise + propagation of its restart.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit import paths
from testkit.http import free_port, wait_for_port
from testkit.mirrors import Mirror, start_probe
from testkit.nginx import Nginx, make_prefix, render
from testkit.processes import Process, wait_until
from testkit.proxies import missing, start_envoy
from testkit.sidecar import Sidecar
from testkit.snapshots import compile_snapshot

INTERVAL, TIMEOUT, FALL, RISE = 0.5, 0.3, 2, 2
# From a state change to the backend deciding with it: the prober writes the file at once, nginx
# and Lua re-read it every second (and a decision in flight may still use the old state).
PROPAGATION = 1.5
EU_CLIENT = "198.51.100.7"      # eu-west-1 in the config below
FILES = 24


@dataclass
class Downloads:
    """A bounded loop of downloads through the redirector, each followed to the mirror and checked."""
    front_port: int
    checksums: dict[str, str]
    results: list[tuple[float, str, str]] = field(default_factory=list)   # (time, mirror port or "", outcome)
    stop: threading.Event = field(default_factory=threading.Event)

    def one(self, name: str) -> tuple[str, str]:
        # From 127.0.0.2, a trusted proxy forwarding the client: Envoy treats a peer of exactly
        # 127.0.0.1 as itself (DESIGN.md §4).
        conn = http.client.HTTPConnection("127.0.0.1", self.front_port, timeout=5, source_address=("127.0.0.2", 0))
        try:
            conn.request("GET", f"/pub/{name}", headers={"X-Forwarded-For": EU_CLIENT, "Host": "downloads.test"})
            answer = conn.getresponse()
            answer.read()
            location = answer.getheader("Location") or ""
        finally:
            conn.close()
        if answer.status != 302 or not location.startswith("http://127.0.0.1:"):
            return "", f"decision {answer.status} {location!r}"
        port = location.split(":")[2].split("/")[0]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            conn.request("GET", location.split(port, 1)[1])
            body = conn.getresponse().read()
            conn.close()
        except OSError as error:
            return port, f"download failed: {error}"
        return port, "ok" if hashlib.sha256(body).hexdigest() == self.checksums[name] else "corrupt"

    def run(self) -> None:
        names = sorted(self.checksums)
        deadline = time.monotonic() + 60
        index = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            name = names[index % len(names)]
            index += 1
            try:
                mirror, outcome = self.one(name)
            except OSError as error:
                mirror, outcome = "", f"redirector unreachable: {error}"
            self.results.append((time.monotonic(), mirror, outcome))
            time.sleep(0.01)


def file_tree(root: Path) -> dict[str, str]:
    rng = random.Random(11)
    checksums = {}
    (root / "pub").mkdir(parents=True)
    for index in range(FILES):
        data = rng.randbytes(rng.randrange(1, 64 * 1024))
        name = f"file-{index:02}.bin"
        (root / "pub" / name).write_bytes(data)
        checksums[name] = hashlib.sha256(data).hexdigest()
    for path in [root, root / "pub", *(root / "pub").iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return checksums


def config(mirrors: dict[str, Mirror], origin_port: int) -> str:
    health = f"{{ path: /healthz, interval: {int(INTERVAL * 1000)}ms, timeout: {int(TIMEOUT * 1000)}ms, rise: {RISE}, fall: {FALL} }}"
    return f"""version: 1
pools:
  eu:
    health: {health}
    members:
      - {{ url: "http://127.0.0.1:{mirrors['a'].port}", weight: 2 }}
      - {{ url: "http://127.0.0.1:{mirrors['b'].port}", weight: 1 }}
  us:
    health: {health}
    members: [{{ url: "http://127.0.0.1:{mirrors['c'].port}" }}]
providers:
  - name: cloud
    artifacts: "http://127.0.0.1:{origin_port}"
    nearestRegion: true
    regions:
      eu-west-1: {{ artifacts: {{ pool: eu }} }}
      us-east-1: {{ artifacts: {{ pool: us }} }}
    sources: [{{ format: csv, path: cloud.csv }}]
routes:
  - name: files
    path: /pub/{{name}}
    clients: matched
    redirect: {{ to: artifacts }}
trustedProxies: [127.0.0.0/8]
"""


@pytest.fixture
def network(tmp_path):
    """Three mirrors (a, b in eu-west-1; c in us-east-1), the origin, the compiled snapshot, and a
    world-readable directory."""
    # nginx workers run as nobody: the tree lives in a world-readable directory (pytest's own
    # temporary root is private).
    shared = Path(tempfile.mkdtemp(prefix="rdr-mirrors-"))
    shared.chmod(0o755)
    root = shared / "tree"
    checksums = file_tree(root)
    mirrors = {name: Mirror(name, free_port(), root, tmp_path).start() for name in "abc"}
    origin = Mirror("origin", free_port(), root, tmp_path).start()
    (tmp_path / "cloud.csv").write_text("prefix,provider,region\n198.51.100.0/24,,eu-west-1\n203.0.113.0/24,,us-east-1\n")
    (tmp_path / "redirector.yaml").write_text(config(mirrors, origin.port))
    snapshot = compile_snapshot(tmp_path / "redirector.yaml", tmp_path / "mirrors.rdb")
    yield tmp_path, mirrors, origin, snapshot, checksums, shared
    for mirror in [*mirrors.values(), origin]:
        mirror.stop()
    shutil.rmtree(shared, ignore_errors=True)


def exercise_failover(front_port: int, mirrors: dict[str, Mirror], checksums: dict[str, str],
                      propagation: float = PROPAGATION) -> dict:
    """Downloads while mirror a (weight 2 of eu) is stopped and restarted; checks the bounds and
    returns the figures. `propagation`: how long the backend may take to see a new state."""
    downloads = Downloads(front_port, checksums)
    worker = threading.Thread(target=downloads.run, daemon=True)
    worker.start()
    a = str(mirrors["a"].port)
    try:
        wait_until(lambda: any(m == a and o == "ok" for _, m, o in downloads.results), 10, "downloads from mirror a")
    except TimeoutError as error:
        downloads.stop.set()
        raise AssertionError(f"{error}; last downloads: {downloads.results[-3:]}") from None
    time.sleep(1.0)
    stopped_at = time.monotonic()
    mirrors["a"].stop()
    # Detection: `fall` probes (the first may start up to one interval, +10% jitter, after the
    # stop), each failing at once (refused) or after the timeout; then the backend sees it.
    window = INTERVAL * 1.1 * (FALL + 1) + TIMEOUT + propagation
    time.sleep(window + 2.0)
    restarted_at = time.monotonic()
    mirrors["a"].start()
    wait_until(lambda: any(t > restarted_at and m == a and o == "ok" for t, m, o in downloads.results),
               INTERVAL * RISE + propagation + 5, "traffic back on mirror a")
    returned_at = min(t for t, m, o in downloads.results if t > restarted_at and m == a and o == "ok")
    time.sleep(0.5)
    downloads.stop.set()
    worker.join(10)

    failures = [(t, m, o) for t, m, o in downloads.results if o != "ok"]
    assert not [f for f in failures if f[2] == "corrupt"], "a download arrived corrupt"
    late = [f for f in failures if not stopped_at <= f[0] <= stopped_at + window]
    assert not late, f"failures outside the detection window ({window:.1f} s after the stop): {late[:5]}"
    assert all(m == a for _, m, _ in failures), f"failures on other mirrors: {failures[:5]}"
    during = [r for r in downloads.results if stopped_at + window < r[0] < restarted_at]
    assert during and all(m != a for _, m, _ in during), "mirror a still chosen while down"
    rate = len(downloads.results) / max(downloads.results[-1][0] - downloads.results[0][0], 0.001)
    figures = {"downloads": len(downloads.results), "failed": len(failures), "window_s": round(window, 2),
               "failures_within_s": round(max((t for t, _, _ in failures), default=stopped_at) - stopped_at, 2),
               "bound": int(rate * window) + 1, "return_s": round(returned_at - restarted_at, 2)}
    assert figures["failed"] <= figures["bound"], figures
    assert returned_at - restarted_at <= INTERVAL * 1.1 * (RISE + 1) + propagation, figures
    print(f"failover figures: {figures}")
    return figures


def test_standalone_sidecar_fails_over_and_back(network):
    work, mirrors, _, snapshot, checksums, _ = network
    port = free_port()
    sidecar = Sidecar(snapshot, work / "sidecar.log", ["127.0.0.0/8"], port=port,
                      extra_args=["--listen", f"standalone=127.0.0.1:{(front := free_port())}", "--probe",
                                  "--health-state", str(work / "health.state")]).start()
    try:
        wait_for_port(front, 10)
        exercise_failover(front, mirrors, checksums, propagation=0.2)   # the prober runs in-process
        a = f"http://127.0.0.1:{mirrors['a'].port}"
        changes = [(r["from"], r["to"]) for r in sidecar.log_records() if r.get("msg") == "health change" and r.get("member") == a]
        assert changes == [("up", "down"), ("down", "up")], f"mirror a's health changes in the log: {changes}"
    finally:
        sidecar.stop()


def test_sidecar_behind_envoy_fails_over_and_back(network):
    if missing("envoy"):
        pytest.skip("; ".join(missing("envoy")))
    work, mirrors, origin, snapshot, checksums, _ = network
    sidecar = Sidecar(snapshot, work / "sidecar.log", ["127.0.0.0/8"], extra_args=["--probe"]).start()
    envoy = start_envoy(work, "failover", sidecar.port, origin.port)
    try:
        exercise_failover(envoy.port, mirrors, checksums, propagation=0.2)
    finally:
        envoy.stop()
        sidecar.stop()


@pytest.mark.parametrize("kind", ["module", "lua"])
def test_nginx_fails_over_and_back_with_the_standalone_prober(network, kind):
    """examples/mirror-pool/{nginx,openresty}.conf rendered on loopback, `redirector probe` beside it."""
    work, mirrors, origin, snapshot, checksums, shared = network
    state = shared / "health.state"   # nginx's workers (nobody) read it
    probe = start_probe(work, snapshot, state)
    prefix = make_prefix(work)
    port = free_port()
    values = {"SNAPSHOT": snapshot, "HEALTH_STATE": state, "PORT": port, "ORIGIN_PORT": origin.port}
    if kind == "module":
        values["MODULE_DIR"] = paths.MODULE_DIR
    else:
        values.update({"LUA_DIR": paths.LUA_DIR, "LIBRARY": paths.LIBRARY})
    template = paths.EXAMPLES / "mirror-pool" / ("nginx.conf" if kind == "module" else "openresty.conf")
    conf = render(template, prefix / "nginx.conf", values)
    server = Nginx(prefix, conf, port=port).start()
    try:
        exercise_failover(port, mirrors, checksums)
        a = f"http://127.0.0.1:{mirrors['a'].port}"
        changes = [(r["from"], r["to"]) for r in probe_records(probe) if r.get("msg") == "health change" and r.get("member") == a]
        assert changes == [("up", "down"), ("down", "up")], f"mirror a's health changes in the prober's log: {changes}"
        assert not server.problems(), server.problems()
    finally:
        server.stop()
        probe.stop()


def probe_records(probe: Process) -> list[dict]:
    records = []
    for line in probe.log_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records

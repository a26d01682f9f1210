"""Prometheus for real: Debian's `prometheus` (2.42) scrapes a running sidecar on loopback with the
shipped scrape config and alerting rules (examples/prometheus), and the decision counters read back
through its HTTP API equal the requests this test sent; `promtool check metrics` passes on the
sidecar's /metrics; `promtool check rules` and `promtool test rules` pass on the shipped rules; the
rules evaluate without errors on the real series, and exactly the alerts this test provoked (a
mirror whose port is closed, invalid checks) are pending. Run after `swift build -c release`;
prometheus and promtool come from scripts/setup.sh.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from testkit import paths
from testkit.fixtures import AWS_CLIENT, NO_PROVIDER_CLIENT
from testkit.http import free_port, request
from testkit.origin import Origin
from testkit.processes import Process, run, wait_until
from testkit.sidecar import Sidecar
from testkit.snapshots import compile_snapshot

PROMETHEUS_DIR = paths.EXAMPLES / "prometheus"
RULES = PROMETHEUS_DIR / "redirector-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "redirector-rules.test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
MANIFEST = "/v2/pause/manifests/3.9"
# What this test sends, by (provider, outcome) of the decision: (count, source, method, target, headers).
TRAFFIC = {
    ("aws", "redirect"): [(7, AWS_CLIENT, "/ext_authz" + MANIFEST, {}), (4, AWS_CLIENT, "/ext_authz/pub/f.iso", {})],
    ("aws", "pass"): [(3, AWS_CLIENT, "/ext_authz/index.html", {})],             # no route matches
    ("none", "pass"): [(5, NO_PROVIDER_CLIENT, "/ext_authz" + MANIFEST, {})],     # routes need a matched client
    ("none", "invalid"): [(2, NO_PROVIDER_CLIENT, "/forward-auth", {})],          # no X-Forwarded-Uri
}


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (Debian prometheus, scripts/setup.sh)")
    return found


# --------------------------------------------------------------------------- the sidecar


@pytest.fixture(scope="module")
def work(tmp_root) -> Path:
    path = tmp_root / "prometheus"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def mirror():
    """A mirror that is up (answers its health check 200)."""
    server = Origin()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(cli, work, mirror):
    """A sidecar probing its pool in process: one member up (`mirror`), one on a closed port."""
    dead = free_port()   # nothing listens here: connection refused, the member goes down
    (work / "aws.csv").write_text(f"{AWS_CLIENT}/32\n")
    config = {
        "version": 1,
        "pools": {"mirrors": {
            "health": {"path": "/healthz", "interval": "1s", "timeout": "1s", "rise": 1, "fall": 1},
            "members": [{"url": f"http://127.0.0.1:{mirror.port}"}, {"url": f"http://127.0.0.1:{dead}"}]}},
        "providers": [{"name": "aws", "registry": "registry.aws.test", "artifacts": {"pool": "mirrors"},
                       "sources": [{"format": "csv", "path": "aws.csv"}]}],
        "routes": [
            {"name": "registry", "path": "/v2/{rest...}", "clients": "matched", "redirect": {"to": "registry"}},
            {"name": "files", "path": "/pub/{rest...}", "clients": "matched", "redirect": {"to": "artifacts"}},
        ],
        "defaults": {"unmatched": "pass"},
    }
    (work / "redirector.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snapshot = compile_snapshot(work / "redirector.yaml", work / "snapshot.rdb")
    # No trusted proxies: the TCP peer is the client.
    server = Sidecar(snapshot, work / "sidecar.log", trusted=[], extra_args=["--probe"])
    server.dead_member = f"http://127.0.0.1:{dead}"
    server.up_member = f"http://127.0.0.1:{mirror.port}"
    server.start()
    yield server
    code = server.stop()
    assert code == 0, f"sidecar exit status {code}:\n{server.log_text()[-3000:]}"


def exposition(sidecar) -> str:
    resp = request(sidecar.port, "GET", "/metrics")
    assert resp.status == 200
    return resp.body.decode()


def send_traffic(sidecar) -> None:
    """TRAFFIC, each answer checked to be the outcome it is counted as."""
    for (provider, outcome), batches in TRAFFIC.items():
        for count, source, target, headers in batches:
            for _ in range(count):
                resp = request(sidecar.port, "GET", target, source=source, headers=headers)
                if outcome == "redirect":
                    assert resp.status == 302 and resp.location, (target, resp.status)
                    if "/pub/" in target:   # the pool: never the member that is down
                        assert resp.location.startswith(sidecar.up_member + "/"), resp.location
                else:
                    assert resp.status == 200 and resp.location is None, (target, resp.status, resp.location)


def own_counts(sidecar) -> dict[tuple[str, str], float]:
    """redirector_decisions_total by (provider, outcome), from the sidecar's /metrics."""
    pattern = re.compile(r'^redirector_decisions_total\{provider="([^"]*)",outcome="([^"]*)"\} (\S+)$', re.M)
    return {(p, o): float(v) for p, o, v in pattern.findall(exposition(sidecar))}


def expected_counts() -> dict[tuple[str, str], int]:
    return {key: sum(batch[0] for batch in batches) for key, batches in TRAFFIC.items()}


# --------------------------------------------------------------------------- promtool


def test_metrics_pass_promtool_check_metrics(sidecar, tmp_path):
    """/metrics (with pool members, probe histograms and decisions) has no problem promtool's linter
    reports: names, units, counter suffixes, help and type lines."""
    promtool = tool("promtool")
    wait_until(lambda: f'redirector_member_up{{pool="mirrors",member="{sidecar.dead_member}"}} 0' in exposition(sidecar),
               timeout=30, what="the dead member reported down")
    send_traffic(sidecar)
    text = exposition(sidecar)
    for family in ("redirector_decisions_total", "redirector_probe_duration_seconds", "redirector_member_up",
                   "redirector_snapshot_age_seconds", "redirector_health_state_age_seconds"):
        assert f"# TYPE {family} " in text, family
    (tmp_path / "metrics.txt").write_text(text)
    with open(tmp_path / "metrics.txt") as stdin:
        proc = run([promtool, "check", "metrics"], check=False, stdin=stdin)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def test_shipped_rules_pass_promtool():
    promtool = tool("promtool")
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    proc = run([promtool, "check", "rules", RULES])
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout, proc.stdout
    proc = run([promtool, "test", "rules", RULE_TESTS.name], cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout, proc.stdout
    proc = run([promtool, "check", "config", SCRAPE_CONFIG])
    assert "SUCCESS" in proc.stdout, proc.stdout
    # Every alert is unit-tested firing, and not firing at some time (exp_alerts empty).
    tests = [t for case in yaml.safe_load(RULE_TESTS.read_text())["tests"] for t in case["alert_rule_test"]]
    for alert in (r["alert"] for r in rules):
        mine = [t for t in tests if t["alertname"] == alert]
        assert any(t.get("exp_alerts") for t in mine) and any(not t.get("exp_alerts") for t in mine), alert


def test_rules_name_metrics_the_sidecar_exports(sidecar):
    """A misspelt metric in a rule would never fire: every redirector_* name in the rules is a
    family in /metrics."""
    text = exposition(sidecar)
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    used = {name for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
            for name in re.findall(r"\bredirector_[a-z_]+", r["expr"])}
    assert used and used <= families, used - families


# --------------------------------------------------------------------------- Prometheus


class Prometheus(Process):
    def __init__(self, binary: str, config: Path, work: Path):
        self.port = free_port()
        data = work / "tsdb"
        data.mkdir(exist_ok=True)
        super().__init__("prometheus", [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                                        f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=info"],
                         work / "prometheus.log")

    def api(self, path: str, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def problems(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if "level=error" in line]


def prometheus_counts(prometheus) -> dict[tuple[str, str], float]:
    """redirector_decisions_total by (provider, outcome), as Prometheus last scraped it."""
    return {(s["metric"]["provider"], s["metric"]["outcome"]): float(s["value"][1])
            for s in prometheus.query('redirector_decisions_total{job="redirector"}')}


def synced(prometheus, sidecar) -> dict[tuple[str, str], float]:
    """Waits until Prometheus has scraped the sidecar's current decision counters; returns them."""
    now = own_counts(sidecar)
    wait_until(lambda: prometheus_counts(prometheus) == now, timeout=30, what=f"Prometheus counters {now}")
    return now


@pytest.fixture(scope="module")
def prometheus(sidecar, work):
    """Debian's prometheus with the shipped prometheus.yml and rules: the target replaced by the
    test sidecar, 1 s scrape and evaluation intervals (nothing else changed)."""
    binary = tool("prometheus")
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "redirector" and len(job["static_configs"]) == 1
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{sidecar.port}"]
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    server = Prometheus(binary, work / "prometheus.yml", work)
    server.start_listening(server.port, timeout=60)
    wait_until(lambda: server.api("status/runtimeinfo"), timeout=30, what="prometheus API")
    yield server
    server.stop()
    assert not server.problems(), "\n".join(server.problems())


def test_prometheus_scrapes_the_decision_counters(sidecar, prometheus):
    """The counters Prometheus stores are the requests sent: per provider and outcome, per endpoint."""
    def target_up():
        (target,) = prometheus.api("targets")["activeTargets"]
        return target if target["health"] == "up" else None
    target = wait_until(target_up, timeout=30, what="the sidecar target up")
    assert target["labels"]["job"] == "redirector" and target["scrapeUrl"].endswith(f":{sidecar.port}/metrics")
    assert [float(s["value"][1]) for s in prometheus.query('up{job="redirector"}')] == [1.0]

    def endpoint_counts() -> dict[str, float]:
        return {s["metric"]["endpoint"]: float(s["value"][1])
                for s in prometheus.query('redirector_requests_total{job="redirector"}')}

    # Start from what the sidecar has counted so far (other tests of this module send traffic too),
    # once Prometheus has scraped exactly that.
    before = synced(prometheus, sidecar)
    endpoints_before = endpoint_counts()
    send_traffic(sidecar)
    expected = {key: before.get(key, 0) + expected_counts().get(key, 0) for key in before}
    assert set(expected_counts()) <= set(before), "a counter the sidecar did not export before its first decision"
    wait_until(lambda: prometheus_counts(prometheus) == expected, timeout=30, what=f"Prometheus counters {expected}")
    assert own_counts(sidecar) == expected
    sent = sum(expected_counts().values())
    (total,) = prometheus.query('sum(redirector_decisions_total{job="redirector"})')
    assert float(total["value"][1]) == sum(before.values()) + sent
    ext_authz = sum(c for (_, outcome), c in expected_counts().items() if outcome != "invalid")
    endpoints = endpoint_counts()
    assert endpoints["ext_authz"] - endpoints_before.get("ext_authz", 0) == ext_authz
    assert endpoints["forward_auth"] - endpoints_before.get("forward_auth", 0) == expected_counts()[("none", "invalid")]


def test_rules_evaluate_on_real_series(sidecar, prometheus):
    """Prometheus loads the shipped rules, evaluates each without error, and holds exactly the alerts
    this test provoked, pending (every rule has a `for` longer than the test): the closed-port member
    down, and the share of invalid checks (2 of 21) over 5%. Nothing fires for the healthy sidecar."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]

    def loaded():
        found = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return found if len(found) == len(rules) and all(r["health"] == "ok" for r in found) else None
    found = wait_until(loaded, timeout=30, what="every rule evaluated ok")
    assert sorted(r["name"] for r in found) == sorted(r["alert"] for r in rules)
    assert all(not r.get("lastError") for r in found)
    # The invalid share is a rate: traffic Prometheus sees arrive (each batch is 2 invalid of 21).
    synced(prometheus, sidecar)
    send_traffic(sidecar)
    instance = f"127.0.0.1:{sidecar.port}"
    expected = {
        ("RedirectorMirrorDown", (("member", sidecar.dead_member), ("pool", "mirrors"), ("severity", "warning"))),
        ("RedirectorInvalidChecks", (("instance", instance), ("job", "redirector"), ("severity", "warning"))),
    }

    def alerts():
        return {(a["labels"]["alertname"], tuple(sorted((k, v) for k, v in a["labels"].items() if k != "alertname")), a["state"])
                for a in prometheus.api("alerts")["alerts"]}
    try:
        wait_until(lambda: {(name, labels) for name, labels, _ in alerts()} == expected, timeout=30, what="the alerts")
    except TimeoutError as e:
        raise AssertionError(f"alerts: expected {expected}, have {alerts()}") from e
    assert {state for _, _, state in alerts()} == {"pending"}

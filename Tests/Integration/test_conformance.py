"""The conformance harness (Tests/Conformance, docs/conformance.md) as part of the test run: the
suites on the library faces (the in-process core, the C ABI, the CLI's `decide`), every backend
running every case, the mirror-pool suite (health states) on every backend, the differential mode
at a bounded size, the report, the generic HTTP backend against a running sidecar, and the
`redirector conformance` entry point (report files, non-zero exit on a failure). The NGINX, Lua and
sidecar backends' results over every suite are asserted in test_nginx_module.py,
test_lua_binding.py and test_sidecar.py.

Run alone: python3 -m pytest -q Tests/Integration/test_conformance.py
The mirror-pool suite alone: python3 -m pytest -q Tests/Integration/test_conformance.py -k mirror
Sizes: REDIRECTOR_CONFORMANCE_DIFF (differential requests per backend, default 300).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conformance import report
from conformance.backends import ALL, BACKENDS
from conformance.check import Observation, judge
from conformance.diff import run_differential
from conformance.health import HealthFiles, write as write_health
from conformance.run import RunResult, compile_suite, run_suites
from conformance.suite import CASES_DIR
from suite_cases import assert_backend_passes
from testkit import paths
from testkit.http import free_port
from testkit.sidecar import Sidecar

DIFF_COUNT = int(os.environ.get("REDIRECTOR_CONFORMANCE_DIFF", "300"))


@pytest.fixture(scope="session")
def conformance_run(suite_results, tmp_root):
    """Every backend's suite results, the differential mode on every backend, and their report
    (in the scratch directory), once per session."""
    run = RunResult.merge([suite_results(name) for name in ALL])
    run.diff = run_differential(ALL, tmp_root / "conformance-diff", {}, count=DIFF_COUNT, seed=7, infos=run.backends)
    run.command = "pytest Tests/Integration/test_conformance.py"
    out = report.write_reports(run, tmp_root / "conformance-report")
    print(report.terminal(run))
    print(f"report: {out}")
    return run


@pytest.mark.parametrize("backend", ["core", "abi"])
def test_every_suite_case_passes(suite_results, backend):
    assert_backend_passes(suite_results(backend), backend)


def cli_decide(snapshot, client: bytes, method: bytes, target: bytes, headers=(), health=None, verify=False):
    """`redirector decide --json` (with `--header` for each of `headers`, `--health FILE`, and
    `--verify` to make the presence checks): (the decision, or None when the CLI refused the
    arguments; its standard error)."""
    args = [str(paths.CLI), "decide", "--snapshot", str(snapshot), "--client", client.decode("latin-1"),
            "--method", method.decode("latin-1"), "--json"] + (["--verify"] if verify else [])
    for name, value in headers:
        args += ["--header", f"{name.decode('latin-1')}: {value.decode('latin-1')}"]
    if health is not None:
        args += ["--health", str(health)]
    proc = subprocess.run(args + ["--", target.decode("latin-1")], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return None, proc.stderr
    try:
        return json.loads(proc.stdout), proc.stderr
    except ValueError:
        return None, proc.stderr


def test_cli_decide_answers_every_suite_case(cli, suites, compiled_suites, tmp_path):
    """`redirector decide --json` gives each case that names its client (and fits in arguments) the
    decision the suite expects, explanations included — with `--header` for the headers routes
    look at, `--health` for the health state the case names (an unusable file is said on
    standard error and decides as all up), and `--verify` for suites with mirrors, whose HEADs
    must reach the mirrors the case names."""
    snapshots, _ = compiled_suites
    problems, checked, with_health, verified = [], 0, 0, 0
    for suite in suites:
        files = HealthFiles(suite.compiled_config()) if suite.has_health else None
        route_headers = any(route.get("headers") for route in suite.config.get("routes") or [])
        for case in suite.cases:
            r = case.request
            headers = r.headers if route_headers else []
            if r.client is None or any(b"\x00" in v for v in (r.client, r.method, r.target, *(b for h in headers for b in h))):
                continue  # argv cannot carry NUL (the C ABI backend sends it)
            health = None
            if case.health is not None and case.health.kind != "none":
                assert files is not None
                health = tmp_path / f"{suite.name}.health"
                write_health(health, files.prepare(case.health))
                with_health += 1
            if suite.mirrors:
                suite.mirrors.take_heads()
            decision, stderr = cli_decide(snapshots[suite.name], r.client, r.method, r.target, headers, health,
                                          verify=suite.mirrors is not None)
            checked += 1
            if suite.mirrors and case.checked is not None:
                heads = [mirror for mirror, _ in suite.mirrors.take_heads()]
                verified += bool(heads)
                if tuple(heads) != case.checked:
                    problems.append(f"{case.id}: decide --verify sent HEADs to {heads}, want {list(case.checked)}")
            if decision is None:
                problems.append(f"{case.id}: redirector decide refused the request: {stderr[-300:]}")
                continue
            if case.health is not None and case.health.kind == "file" and "deciding without health" not in stderr:
                problems.append(f"{case.id}: {case.health.describe()}: decide did not say it decides without health "
                                f"(stderr: {stderr[-300:]!r})")
            obs = Observation(status=decision["status"], action=decision["action"], location=decision["location"],
                              headers=list(decision["headers"].items()),
                              explain={**{key: decision[key] for key in ("action", "provider", "region", "prefix", "asn",
                                                                         "route", "pool", "step")},
                                       "skipped": " ".join(decision["skipped"])})
            traits = frozenset({"library", "cli"} | ({"route-headers"} if route_headers else set()))
            verdict = judge(obs, "decision", {}, *case.expectations_for(traits))
            problems += [f"{case.id}: {p}" for p in verdict.problems]
    assert checked >= 220, checked
    assert with_health >= 40, with_health
    assert verified >= 10, verified
    assert not problems, "\n".join(problems)


def test_every_backend_ran_the_whole_suite(conformance_run):
    """Each case runs on every backend that can carry it; n/a is only for documented reasons."""
    cases = sum(len(s.cases) for s in conformance_run.suites)
    assert cases >= 150
    for name, info in conformance_run.backends.items():
        if info.missing:
            continue
        results = conformance_run.for_backend(name)
        assert len(results) == cases, name
        na = [r for r in results if r.state == "n/a"]
        # Cases whose routes look at request headers are n/a exactly where the backend does not pass
        # them to decisions (the sidecar, and so every proxy in front of it).
        headers = [r for r in na if r.detail == "needs route-headers"]
        assert not headers or "route-headers" not in BACKENDS[name].traits, name
        assert len(headers) <= 5, f"{name}: {len(headers)} cases n/a for want of request headers"
        # Only the C ABI (which takes resolved clients) skips a sizeable share.
        others = len(na) - len(headers)
        assert others <= (60 if name == "abi" else 10), f"{name}: {others} cases n/a"


# --------------------------------------------------------------------------- mirror pools


@pytest.fixture(scope="session")
def mirror_pools_run(suites, compiled_suites, tmp_root):
    """The mirror-pool suite (health states) on every backend."""
    mirror = [s for s in suites if s.name == "mirror-pools"]
    assert mirror and mirror[0].has_health
    return run_suites(mirror, ALL, tmp_root / "conformance-mirror-pools", bench_seconds=0, compiled=compiled_suites)


@pytest.mark.parametrize("backend", ALL)
def test_mirror_pools_on_every_backend(mirror_pools_run, backend):
    """Every backend is brought to each health state the mirror-pool cases name (the state file
    written atomically; the library backends load it, the others are polled until they use it)
    and answers every case as worked out by hand: members down, a priority down, a region down
    (nearest region), every region down (provider pool), everything down (default pool, pass), a
    `fallback: pass` pool, a pool's fallback pool, and missing, stale, corrupt and foreign files as
    all up. Only the cases whose routes look at request headers may be n/a, and only where the
    backend does not pass request headers to decisions."""
    run = mirror_pools_run
    info = run.backends[backend]
    if info.missing:
        pytest.skip(f"{backend}: prerequisite missing: {'; '.join(info.missing)}")
    results = run.for_backend(backend)
    assert not info.errors, f"{backend}: " + "\n".join(info.errors)
    bad = [r for r in results if r.state in ("fail", "error")]
    assert not bad, f"{backend}: " + "\n".join(
        f"- {r.case.id}: {report.clip(r.detail, 400)}\n    request:  {r.case.describe_request()}\n"
        f"    expected: {r.expected}\n    observed: {r.observed}" for r in bad)
    na = [r for r in results if r.state == "n/a"]
    assert all(r.detail == "needs route-headers" and "route-headers" in r.case.requires for r in na), \
        [(r.case.name, r.detail) for r in na]
    assert not na or "route-headers" not in BACKENDS[backend].traits
    passed = [r for r in results if r.state == "pass"]
    down = [r for r in passed if r.case.health is not None and r.case.health.down]
    assert len(passed) >= 38 and len(down) >= 19, (len(passed), len(down))


def test_which_backends_take_health_states():
    """Every backend of `all` can be brought to a health state; the generic HTTP backend cannot
    (its target's state file is not the harness's), so those cases are n/a there, with the reason."""
    for name in ALL:
        assert BACKENDS[name]().health_unsupported() is None, name
    assert "health state" in (BACKENDS["http"]().health_unsupported() or "")


def test_differential_agrees(conformance_run):
    diff = conformance_run.diff
    assert diff is not None
    if "core" in diff.missing:
        pytest.skip(f"differential: prerequisite missing: {'; '.join(diff.missing['core'])}")
    assert not diff.errors, "\n".join(diff.errors)
    assert diff.oracle.get("checked") == DIFF_COUNT and diff.oracle.get("agree") == DIFF_COUNT, diff.oracle
    ran = [n for n in diff.per_backend if n != "core"]
    assert ran, "no backend besides the core ran the differential"
    assert not diff.disagreements, "\n".join(diff.summary_lines())
    for name in ran:
        st = diff.per_backend[name]
        assert st["requests"] == DIFF_COUNT and st["agree"] + st.get("known", 0) == DIFF_COUNT, (name, st)


def test_report_has_latency_and_throughput(conformance_run, tmp_root):
    index = tmp_root / "conformance-report" / "index.html"
    text = index.read_text()
    assert "<svg" in text and "latency" in text and "Differential" in text
    assert (tmp_root / "conformance-report" / "results.json").exists()
    measured = [n for n, i in conformance_run.backends.items() if i.throughput]
    assert "core" in measured and "abi" in measured


def test_generic_http_backend_against_a_running_sidecar(cli, suites, tmp_root):
    """The generic backend, pointed at a standalone sidecar serving the simple suite's policy."""
    simple = [s for s in suites if s.name == "simple"]
    snapshot = compile_suite(simple[0], tmp_root / "conformance-http")
    port = free_port()
    sidecar = Sidecar(snapshot, tmp_root / "conformance-http" / "sidecar.log", trusted=["127.0.0.1/32"],
                      extra_args=["--listen", f"standalone=127.0.0.1:{port}", "--explain"])
    sidecar.start()
    try:
        settings = {"http": {"url": f"http://127.0.0.1:{port}", "client_header": "X-Forwarded-For",
                             "pass_status": 404, "suites": ["simple"], "explain_header": "X-Redirector-Explain"}}
        run = run_suites(simple, ["http"], tmp_root / "conformance-http" / "work", settings, bench_seconds=0)
    finally:
        sidecar.stop()
    results = run.for_backend("http")
    assert [r for r in results if r.state == "pass"], [r.detail for r in results]
    bad = [r for r in results if r.state in ("fail", "error")]
    assert not bad, "\n".join(f"{r.case.id}: {r.detail}" for r in bad)


def test_cli_entry_point_exit_status(cli, tmp_path):
    """`redirector conformance` passes on a good suite and exits 1 when an expectation is wrong."""
    report_dir = tmp_path / "report"
    ok = subprocess.run([str(cli), "conformance", "run", "--backends", "core,abi", "--case", "^simple/",
                         "--bench-seconds", "0", "--report", str(report_dir)],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert (report_dir / "index.html").exists() and "aws client, registry" in ok.stdout

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text((CASES_DIR / "simple.yaml").read_text()
                     .replace("config: ../../../examples/simple/redirector.yaml",
                              f"config: {paths.EXAMPLES / 'simple' / 'redirector.yaml'}")
                     .replace("path: ../../../examples/data/", f"path: {paths.EXAMPLES / 'data'}/")
                     .replace("location: https://kubernetes.ecr.io/v2/pause/manifests/3.9\n",
                              "location: https://wrong.example/v2/pause/manifests/3.9\n", 1))
    bad = subprocess.run([str(cli), "conformance", "run", "--backends", "core", "--suite", str(wrong),
                          "--bench-seconds", "0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1, bad.stdout[-2000:]
    assert "FAILURES (1)" in bad.stdout and "wrong.example" in bad.stdout


def test_missing_prerequisite_is_reported(monkeypatch):
    """A backend that cannot run says why (here: the generic backend without a URL, and Envoy
    when its binary is not installed)."""
    assert BACKENDS["http"]().missing() == ["no --http-url given (the URL of a running redirector)"]
    monkeypatch.setattr(paths, "envoy_binary", lambda: None)
    assert any("Envoy is not installed" in m for m in BACKENDS["envoy"]().missing())

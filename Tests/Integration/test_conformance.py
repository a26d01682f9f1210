"""The conformance harness (Tests/Conformance, docs/conformance.md) as part of the test run: the
suites on the library faces (the in-process core, the C ABI, the CLI's `decide`), every backend
running every case, the differential mode at a bounded size, the report, the generic HTTP backend
against a running sidecar, and the `redirector conformance` entry point (report files, non-zero
exit on a failure). The NGINX, Lua and sidecar backends' results are asserted in
test_nginx_module.py, test_lua_binding.py and test_sidecar.py.

Run alone: python3 -m pytest -q Tests/Integration/test_conformance.py
Sizes: REDIRECTOR_CONFORMANCE_DIFF (differential requests per backend, default 300).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conformance import report
from conformance.backends import ALL, BACKENDS
from conformance.check import Observation, judge
from conformance.diff import run_differential
from conformance.run import RunResult, compile_suite, run_suites
from conformance.suite import CASES_DIR
from suite_cases import assert_backend_passes
from testkit import paths
from testkit.http import free_port
from testkit.sidecar import Sidecar
from testkit.snapshots import cli_decide

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


def test_cli_decide_answers_every_suite_case(cli, suites, compiled_suites):
    """`redirector decide --json` gives each case that names its client (and fits in arguments) the
    decision the suite expects, explanations included."""
    snapshots, _ = compiled_suites
    problems, checked = [], 0
    for suite in suites:
        for case in suite.cases:
            r = case.request
            if r.client is None or any(b"\x00" in v for v in (r.client, r.method, r.target)):
                continue  # argv cannot carry NUL (the C ABI backend sends it)
            decision = cli_decide(snapshots[suite.name], *(v.decode("latin-1") for v in (r.client, r.method, r.target)))
            checked += 1
            if decision is None:
                problems.append(f"{case.id}: redirector decide refused the request")
                continue
            obs = Observation(status=decision["status"], action=decision["action"], location=decision["location"],
                              headers=list(decision["headers"].items()),
                              explain={key: decision[key] for key in ("action", "provider", "region", "prefix", "asn",
                                                                      "route")})
            verdict = judge(obs, "decision", {}, *case.expectations_for(frozenset({"library", "cli"})))
            problems += [f"{case.id}: {p}" for p in verdict.problems]
    assert checked >= 150, checked
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
        # Only the C ABI (which takes resolved clients) skips a sizeable share.
        assert len(na) <= (60 if name == "abi" else 10), f"{name}: {len(na)} cases n/a"


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

"""The conformance harness (Tests/Conformance, docs/conformance.md) as part of the test run: the
full case suite on every backend, the differential mode at a bounded size, the generic HTTP
backend against a running sidecar, and the `redirector conformance` entry point (report files,
non-zero exit on a failure).

Run alone: python3 -m pytest -q Tests/Integration/test_conformance.py
Sizes: REDIRECTOR_CONFORMANCE_DIFF (differential requests per backend, default 300).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / "Tests" / "Conformance"
if str(CONFORMANCE) not in sys.path:
    sys.path.insert(0, str(CONFORMANCE))

from conformance import report  # noqa: E402
from conformance.backends import ALL, BACKENDS  # noqa: E402
from conformance.diff import run_differential  # noqa: E402
from conformance.run import run_suites  # noqa: E402
from conformance.suite import discover  # noqa: E402

from harness import free_port  # noqa: E402
import sidecar_helpers  # noqa: E402

REQUIRE_ALL = os.environ.get("REDIRECTOR_REQUIRE_ALL") == "1"
DIFF_COUNT = int(os.environ.get("REDIRECTOR_CONFORMANCE_DIFF", "300"))


def missing_or_skip(why: list[str], what: str):
    message = f"{what}: prerequisite missing: {'; '.join(why)}"
    if REQUIRE_ALL:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def conformance_run(tmp_root, cli):
    """The whole suite on every backend, once per session; the report goes to the scratch dir."""
    suites = discover()
    work = tmp_root / "conformance"
    run = run_suites(suites, ALL, work, bench_seconds=1.0)
    run.diff = run_differential(ALL, work, {}, count=DIFF_COUNT, seed=7, infos=run.backends)
    run.command = "pytest Tests/Integration/test_conformance.py"
    out = report.write_reports(run, tmp_root / "conformance-report")
    print(report.terminal(run))
    print(f"report: {out}")
    return run


@pytest.mark.parametrize("backend", ALL)
def test_suite_passes_on_backend(conformance_run, backend):
    info = conformance_run.backends[backend]
    if info.missing:
        missing_or_skip(info.missing, backend)
    results = conformance_run.for_backend(backend)
    assert results, f"{backend}: no results"
    bad = [r for r in results if r.state in ("fail", "error")]
    ran = [r for r in results if r.state in ("pass", "fail")]
    assert ran, f"{backend}: no case ran ({', '.join(sorted({r.detail for r in results}))[:500]})"
    assert not info.errors, f"{backend}: " + "\n".join(info.errors)
    assert not bad, f"{backend}: {len(bad)} cases failed:\n" + "\n".join(
        f"- {r.case.id}: {report.clip(r.detail, 300)}\n    request:  {r.case.request.describe()}\n"
        f"    expected: {report.clip(r.expected)}\n    observed: {report.clip(r.observed)}" for r in bad[:30])


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
        missing_or_skip(diff.missing["core"], "differential")
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


def test_generic_http_backend_against_a_running_sidecar(cli, tmp_root):
    """The generic backend, pointed at a standalone sidecar serving the simple suite's policy."""
    from conformance.run import compile_suite
    suites = [s for s in discover() if s.name == "simple"]
    snapshot = compile_suite(suites[0], tmp_root / "conformance-http")
    port = free_port()
    sidecar = sidecar_helpers.Sidecar(snapshot, tmp_root / "conformance-http" / "sidecar.log",
                                      extra_args=["--listen", f"standalone=127.0.0.1:{port}", "--explain"],
                                      trusted=["127.0.0.1/32"])
    sidecar.start()
    try:
        settings = {"http": {"url": f"http://127.0.0.1:{port}", "client_header": "X-Forwarded-For",
                             "pass_status": 404, "suites": ["simple"], "explain_header": "X-Redirector-Explain"}}
        run = run_suites(suites, ["http"], tmp_root / "conformance-http" / "work", settings, bench_seconds=0)
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
    wrong.write_text((CONFORMANCE / "cases" / "simple.yaml").read_text()
                     .replace("config: ../../../examples/simple/redirector.yaml",
                              f"config: {REPO / 'examples' / 'simple' / 'redirector.yaml'}")
                     .replace("location: https://kubernetes.ecr.io/v2/pause/manifests/3.9\n",
                              "location: https://wrong.example/v2/pause/manifests/3.9\n", 1))
    bad = subprocess.run([str(cli), "conformance", "run", "--backends", "core", "--suite", str(wrong),
                          "--bench-seconds", "0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1, bad.stdout[-2000:]
    assert "FAILURES (1)" in bad.stdout and "wrong.example" in bad.stdout


def test_missing_prerequisite_is_reported(tmp_path, monkeypatch):
    """A backend that cannot run says why (here: the generic backend without a URL)."""
    b = BACKENDS["http"]()
    assert b.missing() == ["no --http-url given (the URL of a running redirector)"]
    envoy = BACKENDS["envoy"]
    monkeypatch.setattr(sidecar_helpers, "envoy_binary", lambda: None)
    assert any("Envoy is not installed" in m for m in envoy().missing())
    assert shutil.which("python3")

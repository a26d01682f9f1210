"""Runs suites against backends and collects the results."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit import paths
from testkit.snapshots import compile_snapshot

from .backends import BACKENDS, Backend, Context, Throughput
from .check import Observation, Verdict, judge
from .health import HealthFiles, HealthNotTaken, write as write_health
from .suite import Case, HealthSpec, Suite


@dataclass
class CaseResult:
    case: Case
    backend: str
    state: str                      # pass | fail | n/a | missing | error
    detail: str = ""                # why n/a / missing / error, or the problems of a failure
    expected: str = ""
    observed: str = ""
    matched: str = ""               # the variant or accepted alternative that made it pass
    seconds: float | None = None
    observation: Observation | None = None


@dataclass
class BackendInfo:
    name: str
    title: str
    traits: list[str]
    profile: str
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)       # start failures, process problems
    latencies: list[float] = field(default_factory=list)  # suite requests
    throughput: Throughput | None = None
    diff_latencies: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    suites: list[Suite]
    backends: dict[str, BackendInfo]
    results: dict[tuple[str, str], CaseResult]
    started: float
    finished: float = 0.0
    diff: object | None = None            # diff.DiffResult when the differential ran
    command: str = ""

    def for_backend(self, name: str) -> list[CaseResult]:
        return [r for (cid, b), r in self.results.items() if b == name]

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results.values() if r.state in ("fail", "error")]

    def missing(self) -> list[CaseResult]:
        return [r for r in self.results.values() if r.state == "missing"]

    @classmethod
    def merge(cls, runs: list["RunResult"]) -> "RunResult":
        """One result from runs of the same suites on different backends."""
        merged = cls(suites=runs[0].suites, backends={}, results={}, started=min(r.started for r in runs),
                     finished=max(r.finished for r in runs))
        for r in runs:
            merged.backends.update(r.backends)
            merged.results.update(r.results)
        return merged


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compile_suite(suite: Suite, workdir: Path) -> Path:
    """The suite's config written under workdir/suites/NAME and compiled there (snapshot.rdb)."""
    directory = workdir / "suites" / suite.name
    try:
        return compile_snapshot(suite.write_config(directory), directory / "snapshot.rdb")
    except AssertionError as e:
        raise RuntimeError(f"compile of suite {suite.name} failed:\n{e}") from None


def bench_request(suite: Suite):
    for case in suite.cases:
        r = case.request
        if (case.expect.action == "redirect" and r.client is not None and r.method == b"GET"
                and not r.headers and b"?" not in r.target):
            return r
    return None


def health_groups(cases: list[Case]) -> list[tuple[HealthSpec | None, list[Case]]]:
    """Cases grouped by the health state they name, groups in the order of their first case (so
    each backend changes state once per distinct state)."""
    groups: dict[HealthSpec | None, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.health, []).append(c)
    return list(groups.items())


def checked_verdict(verdict: Verdict, want: tuple[str, ...], heads: list[tuple[str, str]]) -> Verdict:
    """`verdict`, failed when the mirrors that received HEADs during the case (in order) are not
    the ones the case names."""
    seen = tuple(mirror for mirror, _ in heads)
    if seen == want:
        return verdict
    problem = (f"HEADs at {', '.join(f'{m} {p}' for m, p in heads) or 'no mirror'}, "
               f"want at {', '.join(want) or 'no mirror'}")
    return Verdict(False, verdict.problems + [problem], verdict.matched)


def make_backend(name: str, settings: dict) -> Backend:
    return BACKENDS[name](**settings.get(name, {}))


def compile_suites(suites: list[Suite], workdir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Every suite compiled under workdir: (snapshot by suite name, error by suite name)."""
    snapshots: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for s in suites:
        if not paths.CLI.exists():
            errors[s.name] = f"{paths.CLI} is missing (swift build -c release): suites cannot be compiled"
            continue
        try:
            snapshots[s.name] = compile_suite(s, workdir)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            errors[s.name] = str(e)
            log(f"[conformance] {e}")
    return snapshots, errors


def run_suites(suites: list[Suite], names: list[str], workdir: Path, settings: dict | None = None,
               bench_seconds: float = 2.0, bench_suite: str | None = None, timeout: float = 10.0,
               compiled: tuple[dict[str, Path], dict[str, str]] | None = None) -> RunResult:
    """Every case of `suites` on the backends `names`; `compiled` (from compile_suites) saves
    compiling the suites again."""
    settings = settings or {}
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    result = RunResult(suites=suites, backends={}, results={}, started=time.time())
    snapshots, compile_errors = compiled or compile_suites(suites, workdir)
    # Throughput is measured once per backend, on `simple` (the README's policy) when it is selected.
    if bench_suite is None:
        names_with_request = [s.name for s in suites if bench_request(s)]
        bench_suite = "simple" if "simple" in names_with_request else next(iter(names_with_request), None)

    for name in names:
        backend = make_backend(name, settings)
        info = BackendInfo(name, backend.title, sorted(backend.traits), backend.profile)
        result.backends[name] = info
        info.missing = backend.missing()
        if info.missing:
            log(f"[conformance] {name}: prerequisite missing: {'; '.join(info.missing)}")
            for s in suites:
                for c in s.cases:
                    result.results[(c.id, name)] = CaseResult(c, name, "missing", "; ".join(info.missing))
            continue
        for s in suites:
            cases = s.cases
            reasons = {}
            for c in cases:
                why = None
                lacking = c.requires - backend.traits
                if lacking:
                    why = f"needs {', '.join(sorted(lacking))}"
                elif c.health is not None and backend.health_unsupported():
                    why = backend.health_unsupported()
                else:
                    why = backend.applicable(c.request, s)
                if why:
                    reasons[c.id] = why
                    result.results[(c.id, name)] = CaseResult(c, name, "n/a", why)
            todo = [c for c in cases if c.id not in reasons]
            if not todo:
                continue
            if s.name in compile_errors:
                for c in todo:
                    result.results[(c.id, name)] = CaseResult(c, name, "error", compile_errors[s.name])
                continue
            ctx = Context(suite=s, snapshot=snapshots[s.name], workdir=workdir / "backends" / s.name, timeout=timeout)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            ctx.workdir.chmod(0o755)
            files = None
            if s.has_health:
                ctx.health_file = ctx.workdir / f"health-{name}.state"
                ctx.health_file.unlink(missing_ok=True)
                try:
                    files = HealthFiles(s.compiled_config())
                except RuntimeError as e:
                    for c in todo:
                        result.results[(c.id, name)] = CaseResult(c, name, "error", str(e))
                    continue
            t0 = time.monotonic()
            try:
                backend.start(ctx)
            except Exception as e:  # noqa: BLE001 - any start failure is reported per case
                message = f"{name} did not start for suite {s.name}: {type(e).__name__}: {e}"
                info.errors.append(message[:4000])
                log(f"[conformance] {message[:2000]}")
                for c in todo:
                    result.results[(c.id, name)] = CaseResult(c, name, "error", message[:500])
                try:
                    backend.stop()
                except Exception:  # noqa: BLE001
                    pass
                continue
            failed = 0
            try:
                # Suites whose cases name health states: before each group of cases, the state file
                # is written (atomically) and the backend brought to it.
                for spec, group in health_groups(todo):
                    if spec is not None:
                        assert files is not None and ctx.health_file is not None
                        prepared = files.prepare(spec)
                        try:
                            write_health(ctx.health_file, prepared)
                            backend.take_health(prepared)
                        except (HealthNotTaken, OSError) as e:
                            message = f"health state ({spec.describe()}): {e}"
                            info.errors.append(message[:2000])
                            log(f"[conformance] {name}: {message[:1000]}")
                            for c in group:
                                result.results[(c.id, name)] = CaseResult(c, name, "error", message[:500])
                            failed += len(group)
                            continue
                    for c in group:
                        primary, alternatives, because = c.expectations_for(backend.traits)
                        if s.mirrors:
                            s.mirrors.take_heads()
                        obs = backend.send(c.request)
                        verdict = judge(obs, backend.profile, backend.options, primary, alternatives, because)
                        if s.mirrors and c.checked is not None:
                            verdict = checked_verdict(verdict, c.checked, s.mirrors.take_heads())
                        cr = CaseResult(c, name, "pass" if verdict.ok else "fail", "; ".join(verdict.problems),
                                        primary.describe(), obs.describe(), verdict.matched, obs.seconds, obs)
                        result.results[(c.id, name)] = cr
                        if not obs.error:
                            info.latencies.append(obs.seconds)
                        failed += not verdict.ok
                if bench_seconds > 0 and s.name == bench_suite and info.throughput is None:
                    request = bench_request(s)
                    if request is not None:
                        info.throughput = backend.bench(request, bench_seconds)
            finally:
                try:
                    backend.stop()
                except Exception as e:  # noqa: BLE001
                    info.errors.append(f"stop: {e}")
                info.errors += backend.problems()
            log(f"[conformance] {name:22s} {s.name:18s} {len(todo) - failed}/{len(todo)} pass"
                f"{f', {len(reasons)} n/a' if reasons else ''} ({time.monotonic() - t0:.1f}s)")
    result.finished = time.time()
    return result


def clean(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)

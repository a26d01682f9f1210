"""`redirector conformance …` (python3 -m conformance …): run the suite on backends, the
differential mode, list cases and backends. See docs/conformance.md."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit import paths

from . import report
from .backends import BACKENDS, SHORT, resolve_names
from .diff import run_differential
from .run import RunResult, clean, run_suites
from .suite import CASES_DIR, REPO, SuiteError, discover, select


def pin_binaries(workdir: Path) -> None:
    """Copies the redirector CLI and the conformance driver into the scratch directory and uses the
    copies for the whole run (testkit.paths), so a rebuild during the run (binaries relinked in
    place) cannot break process starts."""
    for name in ("CLI", "CONFORMANCE_DRIVER"):
        source = getattr(paths, name)
        if not source.exists():
            continue
        dest = workdir / "bin" / source.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(120):
            try:
                shutil.copy2(source, dest)
                if subprocess.run([str(dest), "--help"], capture_output=True, timeout=30).returncode == 0:
                    setattr(paths, name, dest)
                    break
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(1)  # being relinked right now


def load_suites(files: list[Path] | None):
    """The suites (default: every suite in cases/), or None after printing why they cannot load."""
    try:
        return discover(files)
    except SuiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def backend_settings(args) -> dict:
    return {"http": {"url": args.http_url, "client_header": args.http_client_header,
                     "pass_status": args.http_pass_status, "origin_header": args.http_origin_header,
                     "suites": args.http_suite, "explain_header": args.http_explain_header}}


def add_common(p: argparse.ArgumentParser):
    p.add_argument("--backends", default="all",
                   help="comma list of backends, 'all' (every backend but http; http too when --http-url is "
                        "given), '-name' removes one: e.g. all,-envoy (default: all)")
    p.add_argument("--report", metavar="DIR", type=Path, help="write index.html, results.json and table.txt here")
    p.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, logs, snapshots)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--allow-missing", action="store_true",
                   help="a backend whose prerequisites are missing does not fail the run (it is still reported)")
    g = p.add_argument_group("generic HTTP backend (http)")
    g.add_argument("--http-url", help="a running redirector on loopback, e.g. http://127.0.0.1:8080")
    g.add_argument("--http-client-header", default="X-Forwarded-For",
                   help="header carrying the client address (default X-Forwarded-For)")
    g.add_argument("--http-pass-status", type=int, help="status the target answers when it does not redirect "
                                                          "(default: not checked)")
    g.add_argument("--http-origin-header", help="header only the target's origin sets (identifies 'pass')")
    g.add_argument("--http-explain-header", help="header with key=value explanations (e.g. X-Redirector-Explain)")
    g.add_argument("--http-suite", action="append", help="suite(s) the target serves (repeatable; default all)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="redirector conformance",
        description="Run one case suite against every backend (library, C ABI, NGINX module, Lua, the sidecar "
                    "in each mode and behind Envoy/Caddy/nginx, any HTTP redirector) and report differences "
                    "and speed. Exits 1 on any failure or disagreement.")
    sub = parser.add_subparsers(dest="command")

    p_run = sub.add_parser("run", help="run the case suite (and optionally the differential mode)")
    p_run.add_argument("--suite", action="append", type=Path,
                       help=f"suite file or directory (repeatable; default {CASES_DIR.relative_to(REPO)})")
    p_run.add_argument("--case", action="append", help="regular expression on suite/case ids (repeatable)")
    p_run.add_argument("--bench-seconds", type=float, default=2.0,
                       help="throughput measurement per backend, seconds (0 disables; default 2)")
    p_run.add_argument("--bench-suite", help="suite whose first redirect case is benchmarked")
    p_run.add_argument("--diff-count", type=int, default=0,
                       help="also run the differential mode with this many requests (default 0: off)")
    p_run.add_argument("--diff-seed", type=int, default=1, help="random seed of the differential mode")
    p_run.add_argument("--quiet", action="store_true", help="print only the summary, not the table")
    add_common(p_run)

    p_diff = sub.add_parser("diff", help="differential mode only: random and boundary requests from real tables")
    p_diff.add_argument("--count", type=int, default=1000, help="requests (default 1000)")
    p_diff.add_argument("--seed", type=int, default=1)
    p_diff.add_argument("--policy", type=Path, help="policy config (default Tests/Conformance/differential/policy.yaml)")
    add_common(p_diff)

    p_list = sub.add_parser("list", help="list suites and cases")
    p_list.add_argument("--suite", action="append", type=Path)
    sub.add_parser("backends", help="list backends, their traits and missing prerequisites")

    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2

    if args.command in ("run", "diff"):
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="redirector-conformance-"))
        workdir.mkdir(parents=True, exist_ok=True)
        pin_binaries(workdir)

    if args.command == "list":
        suites = load_suites(args.suite)
        if suites is None:
            return 2
        for s in suites:
            print(f"{s.name} ({s.path.relative_to(REPO) if s.path.is_relative_to(REPO) else s.path}): "
                  f"{len(s.cases)} cases")
            for c in s.cases:
                print(f"  {c.id}: {c.describe_request()} → {c.expect.describe()}")
        return 0

    if args.command == "backends":
        for name, cls in BACKENDS.items():
            b = cls()
            missing = b.missing()
            state = "ready" if not missing else "missing: " + "; ".join(missing)
            print(f"{name:22s} {SHORT.get(name, ''):7s} {cls.title:45s} profile={cls.profile:13s} {state}")
            print(f"{'':30s} traits: {', '.join(sorted(cls.traits))}")
        return 0

    try:
        names = resolve_names(args.backends, args.http_url)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "redirector conformance " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    settings = backend_settings(args)
    try:
        if args.command == "run":
            suites = load_suites(args.suite)
            if suites is None:
                return 2
            for s in suites:
                s.cases = select(s.cases, args.case)
            suites = [s for s in suites if s.cases]
            if not suites:
                print("error: no case matches", file=sys.stderr)
                return 2
            run = run_suites(suites, names, workdir, settings, bench_seconds=args.bench_seconds,
                             bench_suite=args.bench_suite, timeout=args.timeout)
            if args.diff_count > 0:
                run.diff = run_differential(names, workdir, settings, count=args.diff_count, seed=args.diff_seed,
                                            infos=run.backends, timeout=args.timeout)
        else:
            run = RunResult(suites=[], backends={}, results={}, started=time.time())
            run.diff = run_differential(names, workdir, settings, count=args.count, seed=args.seed,
                                        policy=args.policy, infos=run.backends, timeout=args.timeout)
            run.finished = time.time()
        run.command = command
        text = report.terminal(run)
        if getattr(args, "quiet", False):
            text = text[text.find("\nbackend "):] if "\nbackend " in text else text
        print(text)
        if args.report:
            index = report.write_reports(run, args.report)
            print(f"\nreport: {index}")
        failed = bool(run.failures()) or any(i.errors for i in run.backends.values())
        missing = any(i.missing for i in run.backends.values())
        if run.diff is not None:
            failed = failed or bool(run.diff.disagreements) or bool(run.diff.errors)
        if missing and not args.allow_missing:
            print("\nsome backends could not run (prerequisite missing); --allow-missing to accept", file=sys.stderr)
            failed = True
        print(("\nFAILED" if failed else "\nOK") + f" (scratch: {workdir}{'' if args.keep else ', removed'})")
        return 1 if failed else 0
    finally:
        if not args.keep and args.workdir is None:
            clean(workdir)


def _terminate(signum, frame):
    # SIGTERM (e.g. from `timeout`) unwinds like an exception, so every backend stops its processes.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())

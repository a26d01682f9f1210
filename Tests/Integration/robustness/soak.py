"""The long robustness runs behind scripts/soak.sh: soaks of every backend (≥ 1 million
requests each, RSS sampled), reloads and snapshot replacements under load, the sidecar killed
behind Envoy and Caddy, the C ABI in a loop and under valgrind. Prints a results table; exits 1
when anything failed.

Sizes come from the environment (defaults in brackets): SOAK_REQUESTS [1000000] per HTTP
backend, SOAK_ABI_DECISIONS [20000000], SOAK_RELOADS [100], SOAK_RESTARTS [10],
SOAK_REPLACEMENTS [20], SOAK_ONLY (comma-separated names of the steps to run: abi, valgrind,
nginx, lua, sidecar, reloads, replacements, kills).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from robustness import scenarios
from testkit.fixtures import MANIFEST, SIDECAR_TRUST
from testkit.http import free_port
from testkit.paths import CLI, FIXTURES, LIBRARY, LUA_MODULE, REPO, caddy_binary, envoy_binary
from testkit.processes import run
from testkit.sidecar import Sidecar
from testkit.snapshots import compile_snapshot

HERE = Path(__file__).resolve().parent

REQUESTS = int(os.environ.get("SOAK_REQUESTS", 1_000_000))
ABI_DECISIONS = int(os.environ.get("SOAK_ABI_DECISIONS", 20_000_000))
RELOADS = int(os.environ.get("SOAK_RELOADS", 100))
RESTARTS = int(os.environ.get("SOAK_RESTARTS", 10))
REPLACEMENTS = int(os.environ.get("SOAK_REPLACEMENTS", 20))
ONLY = set(filter(None, os.environ.get("SOAK_ONLY", "").split(",")))


def wanted(step: str) -> bool:
    return not ONLY or step in ONLY


def command(*parts) -> str:
    return " ".join(str(p) for p in parts)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="redirector-soak-"))
    work.chmod(0o755)
    rows: list[dict] = []

    def record(outcome: dict, reproduce: str) -> None:
        outcome["reproduce"] = reproduce
        rows.append(outcome)
        state = "ok" if not outcome["problems"] else "FAILED: " + "; ".join(outcome["problems"])[:300]
        print(f"  {outcome['name']}: {outcome['size']}: {state}", flush=True)

    def step(name: str, reproduce: str, function) -> None:
        try:
            record(function(), reproduce)
        except Exception as exc:  # noqa: BLE001 - a broken step is a failed row
            traceback.print_exc()
            record(scenarios.result(name, "-", [f"{type(exc).__name__}: {exc}"]), reproduce)

    snapshots = {name: compile_snapshot(FIXTURES / f"{name}.yaml", work / f"{name}.rdb") for name in ("main", "alt")}
    driver = work / "abi_driver"
    run(["gcc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-I", REPO / "include", HERE / "abi_driver.c",
         "-L", LIBRARY.parent, "-lredirector", f"-Wl,-rpath,{LIBRARY.parent}", "-o", driver])

    print(f"soak: work directory {work}", flush=True)

    # ---- the C ABI in a loop, and under valgrind
    if wanted("abi"):
        def abi():
            out = run([driver, "soak", snapshots["main"], ABI_DECISIONS], timeout=3600).stdout
            fields = dict(pair.split("=", 1) for pair in out.split())
            growth = int(fields["rss_last_kb"]) - int(fields["rss_warm_kb"] or fields["rss_first_kb"])
            problems = [f"RSS grew by {growth} KiB"] if growth > 1024 else []
            return scenarios.result("soak: C ABI (rdr_decide loop, reopen every 100k)",
                                    f"{fields['decisions']} decisions, {fields['reopens']} reopens", problems,
                                    memory=fields)
        step("soak: C ABI", "SOAK_ONLY=abi scripts/soak.sh", abi)

    if wanted("valgrind") and shutil.which("valgrind"):
        def valgrind():
            decide = work / "fuzz-decide.rdb"
            run([CLI, "compile", "-c", REPO / "Fuzz" / "Data" / "decide.yaml", "-o", decide])
            files = []
            for base in (REPO / "Fuzz" / "Corpus", REPO / ".build-fuzz" / "corpus", REPO / "Fuzz" / "Regressions"):
                for target in ("decide", "address", "xff", "snapshot"):
                    files += sorted(str(p) for p in (base / target).glob("*")) if (base / target).is_dir() else []
            proc = run(["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                        "--error-exitcode=99", driver, "corpus", snapshots["main"], decide, "--", *files],
                       check=False, timeout=7200)
            text = proc.stderr
            lost = {k: re.search(rf"{k} lost: ([\d,]+) bytes", text) for k in ("definitely", "indirectly", "possibly")}
            lost = {k: int(v.group(1).replace(",", "")) if v else -1 for k, v in lost.items()}
            errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            problems = []
            if proc.returncode != 0 or not errors or errors.group(1) != "0":
                problems.append(f"valgrind exit {proc.returncode}: {text[-500:]}")
            if lost["definitely"] or lost["indirectly"]:
                problems.append(f"leaks: {lost}")
            line = [l for l in proc.stdout.splitlines() if l.startswith("mode=")]
            fields = dict(pair.split("=", 1) for pair in line[-1].split()) if line else {}
            return scenarios.result("valgrind memcheck: C ABI over the fuzz corpus",
                                    f"{len(files)} inputs, {fields.get('decisions', '?')} decisions, "
                                    f"{fields.get('opened', '?')}+{fields.get('rejected', '?')} opens, "
                                    f"lost {lost['definitely']}/{lost['indirectly']} B", problems, lost=lost)
        step("valgrind", "SOAK_ONLY=valgrind scripts/soak.sh", valgrind)

    # ---- soaks of the HTTP backends
    if wanted("nginx") or wanted("lua"):
        for kind in ("module", "lua"):
            if not wanted("nginx" if kind == "module" else "lua") or (kind == "lua" and not LUA_MODULE.exists()):
                continue

            def soak_nginx(kind=kind):
                server = scenarios.start_nginx(work, kind, snapshots["main"], LIBRARY)
                try:
                    outcome = scenarios.soak(f"nginx {'C module' if kind == 'module' else 'Lua binding'}", server.port,
                                             MANIFEST, [scenarios.OLD], REQUESTS, server.pids)
                finally:
                    outcome_log = scenarios.stop_nginx(server)
                outcome["problems"] += outcome_log
                return outcome
            step(f"soak: nginx {kind}", f"SOAK_ONLY={'nginx' if kind == 'module' else 'lua'} scripts/soak.sh", soak_nginx)

    if wanted("sidecar"):
        def soak_sidecar(mode: str):
            live = work / f"sidecar-soak-{mode}.rdb"
            shutil.copyfile(snapshots["main"], live)
            port = free_port()
            server = Sidecar(live, work / f"sidecar-soak-{mode}.log", trusted=SIDECAR_TRUST,
                             extra_args=["--listen", f"standalone=127.0.0.1:{port}"]).start()
            try:
                target = (server.port, "/ext_authz" + MANIFEST) if mode == "ext-authz" else (port, MANIFEST)
                outcome = scenarios.soak(f"sidecar {mode}", *target, [scenarios.OLD], REQUESTS, lambda: {server.proc.pid})
            finally:
                code = server.stop()
            if code != 0:
                outcome["problems"].append(f"sidecar exit status {code}")
            return outcome
        for mode in ("ext-authz", "standalone"):
            step(f"soak: sidecar {mode}", "SOAK_ONLY=sidecar scripts/soak.sh", lambda mode=mode: soak_sidecar(mode))

    # ---- reloads and replacements under load
    if wanted("reloads"):
        for kind in ("module", "lua"):
            if kind == "lua" and not LUA_MODULE.exists():
                continue

            def reloads(kind=kind):
                server = scenarios.start_nginx(work, kind, snapshots["main"], LIBRARY)
                try:
                    outcome = scenarios.nginx_reloads(server, snapshots, RELOADS, interval=0.4)
                finally:
                    outcome_log = scenarios.stop_nginx(server)
                outcome["name"] += f" ({'C module' if kind == 'module' else 'Lua binding'})"
                outcome["problems"] += outcome_log
                return outcome
            step(f"nginx {kind} reloads", "SOAK_ONLY=reloads scripts/soak.sh", reloads)

        def sidecar_reloads():
            live = work / "sidecar-reloads.rdb"
            shutil.copyfile(snapshots["main"], live)
            server = Sidecar(live, work / "sidecar-reloads.log", trusted=SIDECAR_TRUST).start()
            try:
                return scenarios.sidecar_reloads(server, snapshots, RELOADS, interval=0.3)
            finally:
                server.stop()
        step("sidecar reloads", "SOAK_ONLY=reloads scripts/soak.sh", sidecar_reloads)

    if wanted("replacements"):
        def nginx_replacements():
            server = scenarios.start_nginx(work, "module", snapshots["main"], LIBRARY)
            try:
                outcome = scenarios.nginx_replacements(server, snapshots, REPLACEMENTS)
            finally:
                outcome_log = scenarios.stop_nginx(server)
            outcome["problems"] += outcome_log
            return outcome
        step("nginx replacements", "SOAK_ONLY=replacements scripts/soak.sh", nginx_replacements)

        def sidecar_replacements():
            live = work / "sidecar-replacements.rdb"
            shutil.copyfile(snapshots["main"], live)
            server = Sidecar(live, work / "sidecar-replacements.log", trusted=SIDECAR_TRUST).start()
            try:
                return scenarios.sidecar_replacements(server, snapshots, REPLACEMENTS)
            finally:
                server.stop()
        step("sidecar replacements", "SOAK_ONLY=replacements scripts/soak.sh", sidecar_replacements)

    if wanted("kills"):
        proxies = []
        if envoy_binary():
            proxies += [("envoy", True), ("envoy", False)]
        if caddy_binary():
            proxies.append(("caddy", True))
        for proxy, fail_open in proxies:
            def kills(proxy=proxy, fail_open=fail_open):
                directory = Path(tempfile.mkdtemp(prefix=f"kills-{proxy}-", dir=work))
                return scenarios.sidecar_killed_behind_proxy(directory, proxy, RESTARTS, failure_mode_allow=fail_open)
            step(f"kills behind {proxy}", "SOAK_ONLY=kills scripts/soak.sh", kills)

    # ---- the table
    print()
    width = max(len(r["name"]) for r in rows) if rows else 10
    print(f"{'test'.ljust(width)}  {'size':<46}  result  reproduce")
    for r in rows:
        state = "ok" if not r["problems"] else "FAILED"
        memory = r.get("memory")
        size = r["size"]
        if isinstance(memory, dict) and "max_kb" in memory:
            size += f", RSS {memory['early_median_kb'] // 1024}→{memory['late_median_kb'] // 1024} MiB"
        elif isinstance(memory, dict) and "rss_peak_kb" in memory:
            size += f", RSS {int(memory['rss_warm_kb']) // 1024}→{int(memory['rss_last_kb']) // 1024} MiB"
        print(f"{r['name'].ljust(width)}  {size:<46}  {state:<6}  {r['reproduce']}")
    failed = [r for r in rows if r["problems"]]
    for r in failed:
        print(f"\n{r['name']}:\n  " + "\n  ".join(r["problems"][:10]))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Fault and soak scenarios under wrk load, sized by the caller: test_robustness.py runs them
small (bounded), robustness/soak.py (scripts/soak.sh) runs them long and prints a table.

Every scenario returns a dict with `name`, `size` (what was done: requests, reloads, restarts),
`problems` (empty when everything held) and details; none raises for a failed expectation.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from robustness.load import RssSampler, Wrk, problems_of, rss_kb
from testkit.fixtures import AWS, AWS2, BALANCER, MANIFEST, SIDECAR_TRUST, fixture_policy
from testkit.http import free_port, request
from testkit.nginx import Nginx, example_nginx
from testkit.origin import Origin
from testkit.proxies import start_proxy
from testkit.sidecar import Sidecar
from testkit.snapshots import compile_snapshot, replace_atomically, write_in_place

OLD = f"302 {AWS}{MANIFEST}"      # fixtures main.yaml: aws client, registry route
NEW = f"308 {AWS2}{MANIFEST}"     # fixtures alt.yaml: another host and status
CLIENT = "192.0.2.10"


def result(name: str, size: str, problems: list[str], **details) -> dict:
    return {"name": name, "size": size, "problems": problems, **details}


# --------------------------------------------------------------------------- servers


def start_nginx(root: Path, kind: str, snapshot: Path, library: Path | None = None, workers: int = 2) -> Nginx:
    """The nginx example (C module) or the OpenResty example (Lua binding) serving a copy of
    `snapshot` on a free port, without an access log (load would fill it); stop it with `stop_nginx`."""
    server = example_nginx(kind, root, snapshot, library=library, workers=workers, access_log=False)
    server.allowed_log.append("cannot be loaded")
    return server.start()


def stop_nginx(server: Nginx) -> list[str]:
    """Stops the server; returns alerts and crashes from its logs."""
    server.stop()
    return server.problems()


# --------------------------------------------------------------------------- reloads under load


def growth(what: str, before_kb: int, after_kb: int, limit_mib: int, reloads: int) -> list[str]:
    """A problem when `what` grew by more than `limit_mib` over `reloads` reloads."""
    if after_kb - before_kb <= limit_mib * 1024:
        return []
    return [f"{what} grew from {before_kb} to {after_kb} KiB over {reloads} reloads"]


def nginx_reloads(server: Nginx, snapshots: dict, reloads: int, interval: float = 0.5) -> dict:
    """`reloads` reloads alternating two snapshots during wrk load: every answer is the old or
    the new snapshot's, none fails."""
    # A new connection per request: an nginx reload closes the old workers' idle keep-alive
    # connections, and a request racing that close is lost for clients that do not retry (wrk).
    wrk = Wrk(server.port, "GET", MANIFEST, CLIENT, [OLD, NEW], duration=reloads * interval + 2, keepalive=False)
    problems = []
    time.sleep(1)
    master_before = rss_kb(server.proc.pid)
    done = 0
    for index in range(reloads):
        old = server.worker_pids()
        replace_atomically(snapshots["alt" if index % 2 == 0 else "main"], server.snapshot)
        reload = server.reload()
        if reload.returncode != 0:
            problems.append(f"reload {index}: {reload.stderr.strip()[-200:]}")
            continue
        try:
            server.wait_new_workers(old, timeout=20)
            done += 1
        except TimeoutError as exc:
            problems.append(str(exc))
        time.sleep(interval / 2)
    outcome = wrk.result()
    # every reload reads a snapshot into the master; the previous cycle's must be released
    master_after = rss_kb(server.proc.pid)
    problems += problems_of(outcome, minimum_requests=100) + growth("master RSS", master_before, master_after, 8, done)
    return result("nginx reloads under load", f"{done} reloads, {outcome['requests']} requests, master RSS "
                  f"{master_before // 1024}→{master_after // 1024} MiB", problems, requests=outcome["requests"], reloads=done)


def sidecar_reloads(sidecar: Sidecar, snapshots: dict, reloads: int, interval: float = 0.5) -> dict:
    """`reloads` reloads (alternately SIGHUP and the file poll) during wrk load on ext_authz."""
    path = sidecar.snapshot
    wrk = Wrk(sidecar.port, "GET", "/ext_authz" + MANIFEST, CLIENT, [OLD, NEW], duration=reloads * interval + 2)
    problems = []
    time.sleep(1)
    start = sidecar.readyz()[1]["reloads"]
    rss_before = rss_kb(sidecar.proc.pid)
    for index in range(reloads):
        replace_atomically(snapshots["alt" if index % 2 == 0 else "main"], path)
        if index % 2:
            sidecar.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while sidecar.readyz()[1]["reloads"] < start + index + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(interval / 2)
    outcome = wrk.result()
    status, ready = sidecar.readyz()
    done = ready["reloads"] - start
    if done != reloads or ready["reload_failures"]:
        problems.append(f"{done} of {reloads} reloads, {ready['reload_failures']} failures: {ready.get('last_reload_error')}")
    rss_after = rss_kb(sidecar.proc.pid)
    problems += problems_of(outcome, minimum_requests=100) + growth("RSS", rss_before, rss_after, 16, done)
    return result("sidecar reloads under load", f"{done} reloads, {outcome['requests']} requests, RSS "
                  f"{rss_before // 1024}→{rss_after // 1024} MiB", problems, requests=outcome["requests"], reloads=done)


# --------------------------------------------------------------------------- snapshot replacement


def sidecar_replacements(sidecar: Sidecar, snapshots: dict, rounds: int) -> dict:
    """The file replaced atomically, then rewritten in place (like `cp`) while the sidecar polls
    it, under load: partial files are rejected, the complete one is picked up, every answer is
    the old or the new snapshot's."""
    path = sidecar.snapshot
    wrk = Wrk(sidecar.port, "GET", "/ext_authz" + MANIFEST, CLIENT, [OLD, NEW], duration=rounds * 1.6 + 2)
    problems = []
    time.sleep(0.5)
    data = {name: snapshots[name].read_bytes() for name in ("main", "alt")}
    served = []
    for index in range(rounds):
        name = "alt" if index % 2 == 0 else "main"
        if index % 4 < 2:
            replace_atomically(data[name], path)
        else:
            write_in_place(data[name], path)
        want = OLD if name == "main" else NEW
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            resp = request(sidecar.port, "GET", "/ext_authz" + MANIFEST, client=CLIENT)
            if f"{resp.status} {resp.location}" == want:
                served.append(name)
                break
            time.sleep(0.05)
        else:
            problems.append(f"round {index}: {name} not served after 10 s: {sidecar.readyz()[1]}")
        time.sleep(0.5)
    outcome = wrk.result()
    problems += problems_of(outcome, minimum_requests=100)
    ready = sidecar.readyz()[1]
    return result("sidecar: snapshot replaced atomically and in place under load",
                  f"{rounds} replacements ({(rounds + 1) // 2} in place), {outcome['requests']} requests", problems,
                  requests=outcome["requests"], rejected_partial_files=ready["reload_failures"])


def settled_worker_pids(server: Nginx, timeout: float = 10.0):
    """The worker PIDs once they stop changing (old generations have exited), bounded by timeout."""
    deadline = time.monotonic() + timeout
    previous = server.worker_pids()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = server.worker_pids()
        if current == previous:
            return current
        previous = current
    return previous


def nginx_replacements(server: Nginx, snapshots: dict, rounds: int) -> dict:
    """The file rewritten in place (also truncated) under load: without a reload nothing changes
    and no worker dies (the snapshot was read, not mapped). Then a switch: atomically replaced and
    reloaded, or rewritten in place slowly with a reload racing the write (refused while the file
    is partial, or the master's new cycle fails and the old workers stay), then reloaded."""
    import threading
    wrk = Wrk(server.port, "GET", MANIFEST, CLIENT, [OLD, NEW], duration=rounds * 2.5 + 3, keepalive=False)
    problems = []
    time.sleep(0.5)
    data = {name: snapshots[name].read_bytes() for name in ("main", "alt")}
    answer = {"main": OLD, "alt": NEW}
    current = "main"
    refused = 0
    in_place = 0
    for index in range(rounds):
        name = "alt" if current == "main" else "main"
        # The previous reload's old workers may still be draining: start from a settled set, or
        # their normal exit would read as a crash. (Crashes also fail through the error-log check.)
        workers = settled_worker_pids(server)
        # in place, without a reload: the serving snapshot must not change, workers must survive
        write_in_place(data[name], server.snapshot)
        os.truncate(server.snapshot, 100)
        os.truncate(server.snapshot, 0)
        write_in_place(data[name], server.snapshot)
        in_place += 3
        resp = request(server.port, "GET", MANIFEST, client=CLIENT)
        if f"{resp.status} {resp.location}" != answer[current]:
            problems.append(f"round {index}: answer changed without a reload: {resp.status} {resp.location}")
        if server.worker_pids() != workers:
            problems.append(f"round {index}: workers changed without a reload (crash?)")
        if index % 2:
            # a reload racing a slow in-place rewrite
            write_in_place(data[current], server.snapshot)
            writer = threading.Thread(target=write_in_place, args=(data[name], server.snapshot), kwargs={"pause": 0.02})
            writer.start()
            time.sleep(0.05)
            if server.reload().returncode != 0:
                refused += 1
            writer.join()
            in_place += 2
            time.sleep(0.3)
        else:
            replace_atomically(data[name], server.snapshot)
        reload = server.reload()
        if reload.returncode != 0:
            problems.append(f"round {index}: reload of a complete file failed: {reload.stderr[-200:]}")
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            resp = request(server.port, "GET", MANIFEST, client=CLIENT)
            if f"{resp.status} {resp.location}" == answer[name]:
                current = name
                break
            time.sleep(0.05)
        else:
            problems.append(f"round {index}: {name} not served 20 s after the reload")
        time.sleep(0.5)  # old workers finish
    outcome = wrk.result()
    problems += problems_of(outcome, minimum_requests=100)
    return result("nginx: snapshot replaced atomically and in place under load",
                  f"{rounds} switches, {in_place} in-place rewrites, {outcome['requests']} requests", problems,
                  requests=outcome["requests"], refused_partial_reloads=refused)


# --------------------------------------------------------------------------- sidecar killed behind proxies


def loopback_aws_snapshot(work: Path) -> Path:
    """fixtures main.yaml where 127.0.0.1 (wrk's only source address) is an aws client, so a
    request through a proxy from wrk is redirected while the sidecar is up."""
    return compile_snapshot(fixture_policy(work, "loopback-aws", [("127.0.0.1", "aws", "us-east-1")]),
                            work / "loopback-aws.rdb")


def sidecar_killed_behind_proxy(work: Path, proxy: str, restarts: int, down: float = 1.0, up: float = 1.5,
                                failure_mode_allow: bool = True) -> dict:
    """The sidecar is killed (SIGKILL) and restarted `restarts` times behind Envoy or Caddy under
    wrk load through the proxy: while it is down the proxy answers as configured (Envoy
    failure_mode_allow: the origin serves, 200; fail-closed: 503; Caddy: 502), while it is up
    requests are redirected, and after the last restart service is back."""
    snapshot = loopback_aws_snapshot(work)
    upstream = Origin()
    sidecar_port = free_port()
    sidecar = Sidecar(snapshot, work / f"sidecar-{proxy}-faults.log", trusted=SIDECAR_TRUST, port=sidecar_port).start()
    redirect = f"302 {AWS}{MANIFEST}"
    failure = {"envoy": "200" if failure_mode_allow else "503", "caddy": "502"}[proxy]
    options = {"failure_mode_allow": failure_mode_allow, "log_level": "error"} if proxy == "envoy" else {}
    process = start_proxy(proxy, work, "faults", sidecar_port, upstream.port, trusted=[BALANCER + "/32"], **options)
    port = process.port
    problems = []
    restarted = 0
    try:
        probe = request(port, "GET", MANIFEST)
        if f"{probe.status} {probe.location}" != redirect:
            problems.append(f"before: {probe.status} {probe.location}, want {redirect}")
        wrk = Wrk(port, "GET", MANIFEST, None, [redirect, failure], duration=restarts * (down + up) + 2,
                  connections=4)
        time.sleep(1)
        for _ in range(restarts):
            sidecar.stop(signal.SIGKILL)
            time.sleep(down)
            sidecar = Sidecar(snapshot, work / f"sidecar-{proxy}-faults.log", trusted=SIDECAR_TRUST,
                              port=sidecar_port).start()
            restarted += 1
            time.sleep(up)
        outcome = wrk.result()
        problems += problems_of(outcome, minimum_requests=100)
        # recovered: redirects again
        after = request(port, "GET", MANIFEST)
        if f"{after.status} {after.location}" != redirect:
            problems.append(f"after the last restart: {after.status} {after.location}, want {redirect}")
        outcomes = outcome["output"]
    finally:
        sidecar.stop()
        process.stop()
        upstream.stop()
    name = f"sidecar killed and restarted behind {proxy}" + ("" if proxy != "envoy" or failure_mode_allow else " (fail closed)")
    return result(name, f"{restarted} kills/restarts, {outcome['requests']} requests", problems,
                  requests=outcome["requests"], output=outcomes[-300:])


# --------------------------------------------------------------------------- soaks


def soak(name: str, port: int, path: str, allowed: list[str], requests: int, pids, client: str | None = CLIENT,
         connections: int = 16, max_seconds: float = 900) -> dict:
    """At least `requests` checked requests in wrk runs of ≤ 60 s while the RSS of `pids()` is
    sampled: no wrong or failed answer, and RSS after warm-up does not keep growing."""
    sampler = RssSampler(pids, interval=0.5)
    total, problems, runs = 0, [], 0
    started = time.monotonic()
    while total < requests and time.monotonic() - started < max_seconds:
        elapsed = time.monotonic() - started
        rate = total / elapsed if total else 0
        duration = 10 if not rate else min(60, max(5, (requests - total) / rate * 1.1))
        outcome = Wrk(port, "GET", path, client, allowed, duration=duration, connections=connections).result()
        runs += 1
        total += outcome["requests"]
        problems += problems_of(outcome)
    memory = sampler.stop()
    if total < requests:
        problems.append(f"only {total} requests in {max_seconds}s")
    # Growth: after warm-up, the later samples may not exceed the earlier ones by more than 16 MiB
    if memory.get("growth_kb", 0) > 16 * 1024:
        problems.append(f"RSS grew by {memory['growth_kb']} KiB after warm-up: {memory}")
    seconds = time.monotonic() - started
    return result(f"soak: {name}", f"{total} requests in {seconds:.0f}s", problems, requests=total,
                  rate=round(total / seconds), memory=memory)

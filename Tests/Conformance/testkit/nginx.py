"""nginx masters for tests: Debian's nginx in the foreground in a private prefix, on free loopback
ports, stopped by PID; the error log is checked for alerts, emergencies and crashed workers.
Also the shipped example configs (examples/nginx for the C module, examples/openresty for the
Lua binding) rendered for a snapshot."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .http import free_port, wait_for_port
from . import paths
from .paths import EXAMPLES, LUA_DIR, MODULE_DIR, NGINX
from .processes import Process, read_text, run

# Error-log lines that fail a test unless the test expects them.
BAD_LOG = re.compile(r"\[(alert|emerg|crit)\]|exited on signal|core dumped")
EXAMPLE_CONFIGS = {"module": EXAMPLES / "nginx" / "nginx.conf", "lua": EXAMPLES / "openresty" / "nginx.conf"}


def render(template: Path, dest: Path, values: dict) -> Path:
    """Writes `template` to `dest` with @KEY@ placeholders replaced; fails on any placeholder left."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"{template}: placeholders not rendered: {sorted(set(left))}"
    dest.write_text(text)
    return dest


def trust_only(conf: Path, trusted: list[str]) -> None:
    """Rewrites a rendered nginx config so realip trusts exactly `trusted`: each
    `set_real_ip_from …;` line becomes one line per trusted proxy (none: realip trusts nobody)."""
    lines = []
    for line in conf.read_text().splitlines():
        if line.strip().startswith("set_real_ip_from "):
            indent = line[:len(line) - len(line.lstrip())]
            lines += [f"{indent}set_real_ip_from {p};" for p in trusted]
        else:
            lines.append(line)
    conf.write_text("\n".join(lines) + "\n")


def make_prefix(root: Path) -> Path:
    """A new nginx prefix under `root` that workers (user nobody when run as root) can read."""
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=root))
    for p in (prefix, prefix / "logs", prefix / "html"):
        p.mkdir(exist_ok=True)
        p.chmod(0o755)
    return prefix


class Nginx(Process):
    """One nginx master started in the foreground (daemon off) in its own prefix."""

    stop_signals = (signal.SIGQUIT, signal.SIGTERM)   # graceful first

    def __init__(self, prefix: Path, conf: Path, port: int = 0, snapshot: Path | None = None):
        self.prefix, self.conf = prefix, conf
        self.port = port                  # the public listener
        self.snapshot = snapshot          # the snapshot path the config names, when relevant
        self.allowed_log: list[str] = []  # error-log lines a test expects (substrings)
        super().__init__("nginx", [NGINX, "-p", f"{prefix}/", "-c", conf, "-g", "daemon off;"],
                         prefix / "logs" / "stderr.log")

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    def use_snapshot(self, source: Path | None) -> None:
        """Copies `source` over the snapshot the config names, or removes that file (None)."""
        if source is None:
            self.snapshot.unlink()
        else:
            shutil.copyfile(source, self.snapshot)

    def command(self, *args) -> list[str]:
        """An nginx command line for this prefix and config (`-t`, `-s reload`, …)."""
        return [NGINX, "-p", f"{self.prefix}/", "-c", str(self.conf), *args]

    def test_config(self) -> subprocess.CompletedProcess:
        """`nginx -t` (does not raise)."""
        return run(self.command("-t"), check=False, timeout=60)

    def start(self, timeout: float = 20.0) -> "Nginx":
        """`nginx -t`, then the master; returns once its workers run and the port accepts."""
        t = self.test_config()
        assert t.returncode == 0, f"nginx -t failed:\n{t.stderr}"
        super().start()
        deadline = time.monotonic() + timeout
        while not (self.pid_file.exists() and self.worker_pids()):
            if not self.running:
                raise AssertionError(f"nginx exited {self.proc.returncode}:\n{self.log_text()}\n{self.error_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx workers not up after {timeout}s:\n{self.error_text()}")
            time.sleep(0.05)
        wait_for_port(self.port, max(0.5, deadline - time.monotonic()))
        return self

    def worker_pids(self) -> set[int]:
        """PIDs of the master's worker processes (children named 'nginx: worker')."""
        if self.proc is None:
            return set()
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            # "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == self.proc.pid \
                    and b"worker process" in cmdline and b"shutting down" not in cmdline:
                pids.add(int(entry.name))
        return pids

    def pids(self) -> set[int]:
        """The master and its workers."""
        return ({self.proc.pid} if self.proc else set()) | self.worker_pids()

    def reload(self, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """`nginx -s reload`; returns its result (does not raise)."""
        return run(self.command("-s", "reload"), check=False, timeout=timeout)

    def wait_new_workers(self, old: set[int], timeout: float = 20.0) -> set[int]:
        """Waits until every worker is new (not in `old`); returns the new PIDs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if pids and not (pids & old):
                return pids
            time.sleep(0.05)
        raise TimeoutError(f"workers not replaced after {timeout}s: old {old}, now {self.worker_pids()}")

    def error_text(self) -> str:
        return read_text(self.error_log)

    def problems(self) -> list[str]:
        """Alerts, emergencies and crashes in the error log or on the master's output, except
        lines a test said it expects (`allowed_log`)."""
        return [line for line in (self.error_text() + "\n" + self.log_text()).splitlines()
                if BAD_LOG.search(line) and not any(a in line for a in self.allowed_log)]

    def access_entries(self) -> list[dict]:
        """The JSON access-log lines written so far."""
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def wait_access_entries(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The access-log entries once there are `count` of them (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.access_entries()
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)


def example_nginx(kind: str, root: Path, snapshot: Path, *, trusted: list[str] | None = None,
                  module_dir: Path = MODULE_DIR, library: Path | None = None, workers: int | None = None,
                  access_log: bool = True) -> Nginx:
    """The shipped example for `kind` ("module": examples/nginx, "lua": examples/openresty) in a new
    prefix under `root`, on free ports, serving a private copy of `snapshot` (server.snapshot);
    `trusted` replaces the example's trusted proxies. Not started: call start()."""
    port, origin = free_port(), free_port()
    prefix = make_prefix(root)
    live = prefix / "redirector.rdb"
    shutil.copyfile(snapshot, live)
    live.chmod(0o644)
    values = {"SNAPSHOT": live, "PORT": port, "ORIGIN_PORT": origin}
    if kind == "lua":
        values.update({"LUA_DIR": LUA_DIR, "LIBRARY": library or paths.LIBRARY})
    else:
        values["MODULE_DIR"] = module_dir
    conf = render(EXAMPLE_CONFIGS[kind], prefix / "nginx.conf", values)
    if trusted is not None:
        trust_only(conf, trusted)
    text = conf.read_text()
    if workers is not None:
        text = text.replace("worker_processes 2;", f"worker_processes {workers};")
    if not access_log:
        text = text.replace("access_log logs/access.log redirector;", "access_log off;")
    conf.write_text(text)
    return Nginx(prefix, conf, port=port, snapshot=live)

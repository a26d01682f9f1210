"""Mirrors and buckets for tests: plain nginx static file servers on loopback ports (stopped and
started by PID to simulate outages), and `redirector probe` publishing their health."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .nginx import Nginx, make_prefix
from .processes import Process, wait_until


@dataclass
class Mirror:
    """A static file server: an nginx master serving `root` on `port`; with `access_log`, every
    request it answers is logged as JSON (method, uri, status) for counting; with `rate` (nginx's
    limit_rate, e.g. "20k"), each response is sent at most that fast."""
    name: str
    port: int
    root: Path
    work: Path
    access_log: bool = False
    rate: str | None = None
    server: Nginx | None = None
    prefix: Path | None = None

    def start(self) -> "Mirror":
        """Starts it (again, after stop(): same prefix, so the access log goes on)."""
        self.prefix = prefix = self.prefix or make_prefix(self.work)
        conf = prefix / "nginx.conf"
        log = ("log_format requests escape=json '{\"method\":\"$request_method\",\"uri\":\"$uri\",\"status\":$status}';\n"
               "    access_log logs/access.log requests;") if self.access_log else "access_log off;"
        conf.write_text(f"""
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events {{ worker_connections 256; }}
http {{
    {log}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        {f"limit_rate {self.rate};" if self.rate else ""}
        location = /healthz {{ return 200 "ok\\n"; }}
    }}
}}
""")
        self.server = Nginx(prefix, conf, port=self.port).start()
        return self

    def stop(self, graceful: bool = False) -> None:
        """Stops it: at once (SIGTERM, transfers cut), or `graceful` (SIGQUIT: it closes its port
        and finishes the responses under way)."""
        if self.server:
            self.server.stop(signal.SIGQUIT, timeout=60) if graceful else self.server.stop(signal.SIGTERM)
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        """The requests logged so far (with `access_log`), across restarts."""
        log = self.prefix / "logs" / "access.log" if self.prefix else None
        if log is None or not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def start_probe(work: Path, snapshot: Path, state: Path) -> Process:
    """`redirector probe` publishing `state` (for nginx's workers); returns once the file exists."""
    probe = Process("probe", [paths.CLI, "probe", "--snapshot", snapshot, "--state", state, "--log-format", "json"],
                    work / "probe.log").start()
    wait_until(state.exists, 10, "the prober's first state file")
    return probe

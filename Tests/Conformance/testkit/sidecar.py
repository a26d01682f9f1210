"""`redirector serve` (the sidecar) on free loopback ports."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .http import free_port, request, wait_http
from . import paths
from .processes import Process


class Sidecar(Process):
    """`redirector serve` with an auto listener on `port` (free by default) trusting `trusted`,
    plus `extra_args` (more listeners, flags); reloads are polled every 200 ms."""

    def __init__(self, snapshot: Path, log: Path, trusted: list[str], extra_args: list[str] | None = None,
                 port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.snapshot = snapshot
        args = [paths.CLI, "serve", "--snapshot", snapshot, "--listen", f"127.0.0.1:{self.port}",
                "--reload-interval", "200ms", "--log-format", "json"]
        for prefix in trusted:
            args += ["--trusted-proxy", prefix]
        super().__init__("sidecar", args + (extra_args or []), log, env=env)

    def start(self, ready: bool = True, timeout: float = 20.0) -> "Sidecar":
        """Starts it and waits for /healthz (and /readyz when `ready`)."""
        super().start()
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                if request(self.port, "GET", "/healthz", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"sidecar not up after {timeout}s:\n{self.log_text()}")
            time.sleep(0.05)
        if ready:
            wait_http(self.port, "/readyz", 200, timeout=max(1.0, deadline - time.monotonic()))
        return self

    def readyz(self) -> tuple[int, dict]:
        resp = request(self.port, "GET", "/readyz")
        return resp.status, json.loads(resp.body)

    def metrics(self) -> dict[str, float]:
        """`name{labels}` → value from /metrics."""
        out = {}
        for line in request(self.port, "GET", "/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def log_records(self) -> list[dict]:
        """The JSON log lines written so far."""
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records

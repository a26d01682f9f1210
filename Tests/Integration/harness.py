"""Helpers for the NGINX integration tests (real nginx on loopback).

Servers are started on free loopback ports in a private prefix, stopped by PID, and
their error log is checked for [alert]/[emerg]/[crit] lines and crashed workers.
Client addresses are chosen with X-Forwarded-For from the trusted peer 127.0.0.1
(realip: set_real_ip_from 127.0.0.0/8).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OUT = REPO / "out"
MODULE_DIR = OUT / "nginx"
MODULE = MODULE_DIR / "ngx_http_redirector_module.so"
LIBRARY = OUT / "lib" / "libredirector.so"
CLI = Path(os.environ.get("REDIRECTOR_CLI", REPO / ".build" / "release" / "redirector"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
NDK_MODULE = Path("/usr/lib/nginx/modules/ndk_http_module.so")

# Every nginx master started here, stopped at interpreter exit if a test left it running.
_STARTED: list = []


@atexit.register
def _stop_leftovers() -> None:
    for server in _STARTED:
        server.stop(timeout=5)


# Error-log lines that fail a test unless the test expects them.
BAD_LOG = re.compile(r"\[(alert|emerg|crit)\]|exited on signal|core dumped")


# --------------------------------------------------------------------------- tools


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
    """Runs a command with a time bound, capturing text output."""
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def compile_snapshot(config: Path, output: Path) -> Path:
    """`redirector compile --config X --output Y`."""
    run([CLI, "compile", "--config", config, "--output", output])
    return output


def cli_decide(snapshot: Path, client: str, method: str, path: str) -> dict | None:
    """The CLI's decision for one request (the oracle), or None when the CLI cannot say."""
    proc = run(
        [CLI, "decide", "--snapshot", snapshot, "--client", client, "--method", method,
         "--json", "--", path],
        check=False, timeout=30,
    )
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return None


# --------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def location(self) -> str | None:
        return self.header("Location")


def http_request(port: int, method: str = "GET", path: str = "/", client: str | None = None,
                 host: str = "mirror.test", headers: dict | None = None,
                 raw_target: bytes | None = None, timeout: float = 10.0) -> Response:
    """One HTTP/1.1 request over a fresh loopback connection (Connection: close).

    `client` goes into X-Forwarded-For (trusted peer 127.0.0.1, so realip makes it the
    client address). `raw_target` sends the request target byte for byte.
    """
    target = raw_target if raw_target is not None else path.encode("latin-1")
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host.encode()]
    if client is not None:
        lines.append(b"X-Forwarded-For: " + client.encode())
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}".encode("latin-1"))
    lines.append(b"Connection: close")
    data = b"\r\n".join(lines) + b"\r\n\r\n"

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
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
    if method == "HEAD":
        resp.body = b""
    return resp


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --------------------------------------------------------------------------- nginx


def render(template: Path, dest: Path, values: dict[str, str]) -> Path:
    """Replaces @KEY@ placeholders; fails on any placeholder left."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"{template}: placeholders not rendered: {sorted(set(left))}"
    dest.write_text(text)
    return dest


@dataclass
class Nginx:
    """One nginx master started in the foreground (daemon off) in its own prefix."""

    prefix: Path
    conf: Path
    proc: subprocess.Popen | None = None
    allowed_log: list[str] = field(default_factory=list)
    port: int = 0                  # the public listener, set by whoever renders the config
    snapshot: Path | None = None   # the snapshot path the config names, when relevant

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    def cmd(self, *args) -> list[str]:
        return [NGINX, "-p", f"{self.prefix}/", "-c", str(self.conf), *args]

    def test_config(self) -> subprocess.CompletedProcess:
        """`nginx -t` (does not raise)."""
        return run(self.cmd("-t"), check=False, timeout=60)

    def start(self, port: int, timeout: float = 20.0) -> None:
        t = self.test_config()
        assert t.returncode == 0, f"nginx -t failed:\n{t.stderr}"
        stderr_path = self.prefix / "logs" / "stderr.log"
        with open(stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                self.cmd("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,
            )
        _STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = stderr_path.read_text(errors="replace")
                raise AssertionError(f"nginx exited {self.proc.returncode}:\n{err}\n{self.log_text()}")
            if self.pid_file.exists() and len(self.worker_pids()) > 0:
                break
            time.sleep(0.05)
        wait_for_port(port, max(0.5, deadline - time.monotonic()))

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

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, "nginx is not running"
        os.kill(self.proc.pid, sig)

    def reload(self, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """`nginx -s reload`; returns its result (does not raise)."""
        return run(self.cmd("-s", "reload"), check=False, timeout=timeout)

    def wait_new_workers(self, old: set[int], timeout: float = 20.0) -> set[int]:
        """Waits until every worker is new (not in `old`); returns the new PIDs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if pids and not (pids & old):
                return pids
            time.sleep(0.05)
        raise TimeoutError(f"workers not replaced after {timeout}s: old {old}, now {self.worker_pids()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGQUIT) of our master by PID, then TERM/KILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def bad_log_lines(self) -> list[str]:
        """Alerts, emergencies and crashes in the error log or on the master's stderr."""
        try:
            stderr = (self.prefix / "logs" / "stderr.log").read_text(errors="replace")
        except OSError:
            stderr = ""
        bad = []
        for line in (self.log_text() + "\n" + stderr).splitlines():
            if BAD_LOG.search(line) and not any(a in line for a in self.allowed_log):
                bad.append(line)
        return bad

    def access_entries(self) -> list[dict]:
        """The JSON access-log lines written so far."""
        try:
            lines = self.access_log.read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def wait_access_entries(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            entries = self.access_entries()
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)


def make_prefix(tmp_root: Path) -> Path:
    """An nginx prefix that workers (user nobody when run as root) can read."""
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_root))
    (prefix / "logs").mkdir()
    (prefix / "html").mkdir()
    for p in [prefix, prefix / "logs", prefix / "html"]:
        p.chmod(0o755)
    return prefix


EXAMPLE_NGINX = REPO / "examples" / "nginx" / "nginx.conf"


def start_example(nginx_factory, snapshot: Path, module_dir: Path = MODULE_DIR, start=True):
    """The example config on free ports, serving a private copy of `snapshot`."""
    port, origin = free_port(), free_port()

    def values(prefix: Path) -> dict:
        live = prefix / "redirector.rdb"
        shutil.copyfile(snapshot, live)
        live.chmod(0o644)
        return {"MODULE_DIR": module_dir, "SNAPSHOT": live, "PORT": port, "ORIGIN_PORT": origin}

    server = nginx_factory(EXAMPLE_NGINX, values)
    live = server.prefix / "redirector.rdb"
    server.port = port
    server.snapshot = live
    if start:
        server.start(port)
    return server


def replace_atomically(src: Path, dest: Path) -> None:
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.chmod(0o644)
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- cases

AWS = "https://registry.aws.test"
AWS_EU = "https://eu-west-1.registry.aws.test"
GCP = "https://registry.gcp.test"
GCP_ART = "https://artifacts.gcp.test/mirror"
GCP_ART_EU = "https://europe-west1.artifacts.gcp.test/" + "long-mirror-path/" * 19 + "end"
EXAMPLECLOUD = "https://registry.examplecloud.test"
MANIFEST = "/v2/library/nginx/manifests/1.25"


@dataclass(frozen=True)
class Case:
    """One request against the fixtures' main.yaml policy and what every backend must answer.

    Expected decision fields use "" for "absent"; None means "not checked" (the exact
    value is the library's business, e.g. the ASN of an unassigned prefix).
    """

    name: str
    client: str | None          # X-Forwarded-For value sent from 127.0.0.1
    method: str
    path: str
    status: int
    location: str | None = None
    action: str = "pass"
    remote: str | None = None   # $remote_addr after realip (default: client)
    provider: str | None = ""
    region: str | None = ""
    prefix: str | None = ""
    asn: str | None = ""
    route: str | None = ""
    headers: tuple = ()         # (name, value) the response must carry
    raw_target: bytes | None = None

    @property
    def origin_body(self) -> bytes:
        return f"origin {self.method} {self.path}\n".encode()


CASES = [
    Case("aws registry", "192.0.2.10", "GET", MANIFEST, 302, AWS + MANIFEST, "redirect",
         provider="aws", region="us-east-1", prefix="192.0.2.0/24", route="registry"),
    Case("aws region target (longest prefix)", "192.0.2.200", "GET", MANIFEST, 302,
         AWS_EU + MANIFEST, "redirect", provider="aws", region="eu-west-1",
         prefix="192.0.2.128/25", route="registry"),
    Case("nested prefix of another provider", "198.51.100.70", "GET", MANIFEST, 302,
         AWS + MANIFEST, "redirect", provider="aws", region="ap-south-1",
         prefix="198.51.100.64/26", route="registry"),
    Case("gcp artifacts with query", "198.51.100.5", "GET",
         "/binaries/kubectl/v1.30.0/bin/linux/amd64/kubectl?arch=amd64&x=%2F", 307,
         GCP_ART + "/binaries/kubectl/v1.30.0/bin/linux/amd64/kubectl?arch=amd64&x=%2F",
         "redirect", provider="gcp", region="us-central1", prefix="198.51.100.0/24",
         route="artifacts"),
    Case("ipv6 client, HEAD", "2001:db8:b::1", "HEAD", "/v2/pause/blobs/sha256:0123abcd", 302,
         GCP + "/v2/pause/blobs/sha256:0123abcd", "redirect", provider="gcp",
         region="europe-west1", prefix="2001:db8:b::/48", route="registry"),
    Case("target longer than the first buffer", "2001:db8:b::2", "GET", "/binaries/x", 307,
         GCP_ART_EU + "/binaries/x", "redirect", provider="gcp", region="europe-west1",
         prefix="2001:db8:b::/48", route="artifacts"),
    Case("provider by ASN", "203.0.113.9", "GET", MANIFEST, 302, EXAMPLECLOUD + MANIFEST,
         "redirect", provider="examplecloud", prefix="203.0.113.0/24",
         asn="64500", route="registry"),
    Case("ASN of no provider passes", "100.64.1.1", "GET", MANIFEST, 200, None, "pass",
         prefix="100.64.0.0/10", asn="64999"),
    Case("unmatched client passes", "10.1.2.3", "GET", MANIFEST, 200),
    Case("api root answers 200 with header", "192.0.2.10", "GET", "/v2/", 200, None, "respond",
         provider="aws", region="us-east-1", prefix="192.0.2.0/24", route="api-root",
         headers=(("Docker-Distribution-Api-Version", "registry/2.0"),)),
    Case("api root for unmatched client", "10.1.2.3", "GET", "/v2", 200, None, "respond",
         route="api-root", headers=(("Docker-Distribution-Api-Version", "registry/2.0"),)),
    Case("method not allowed", "192.0.2.10", "POST", "/v2/library/nginx/blobs/uploads/", 405,
         None, "respond", provider="aws", region="us-east-1", prefix="192.0.2.0/24",
         route="not-allowed"),
    Case("catalog 404", "198.51.100.5", "GET", "/v2/_catalog", 404, None, "respond",
         provider="gcp", region="us-central1", prefix="198.51.100.0/24", route="catalog"),
    Case("path of no route passes", "192.0.2.10", "GET", "/index.html", 200, None, "pass",
         provider="aws", region="us-east-1", prefix="192.0.2.0/24"),
    Case("ipv4-mapped ipv6 matches ipv4", "::ffff:192.0.2.10", "GET", MANIFEST, 302,
         AWS + MANIFEST, "redirect", provider="aws", region="us-east-1",
         prefix="192.0.2.0/24", route="registry"),
    Case("trusted proxy in the chain", "192.0.2.10, 127.0.0.5", "GET", MANIFEST, 302,
         AWS + MANIFEST, "redirect", remote="192.0.2.10", provider="aws", region="us-east-1",
         prefix="192.0.2.0/24", route="registry"),
    Case("rightmost untrusted address wins", "192.0.2.10, 198.51.100.5", "GET", MANIFEST, 302,
         GCP + MANIFEST, "redirect", remote="198.51.100.5", provider="gcp",
         region="us-central1", prefix="198.51.100.0/24", route="registry"),
    Case("encoded bytes kept verbatim", "192.0.2.10", "GET",
         "/v2/a%0D%0Ab/manifests/c%20d?q=%00&r=%E2%82%AC", 302,
         AWS + "/v2/a%0D%0Ab/manifests/c%20d?q=%00&r=%E2%82%AC", "redirect", provider="aws",
         region="us-east-1", prefix="192.0.2.0/24", route="registry"),
    Case("absolute-form request target", "192.0.2.10", "GET", MANIFEST, 302, AWS + MANIFEST,
         "redirect", provider="aws", region="us-east-1", prefix="192.0.2.0/24",
         route="registry", raw_target=b"http://mirror.test" + MANIFEST.encode()),
    Case("unparsable X-Forwarded-For keeps the peer", "not-an-address", "GET", MANIFEST, 200,
         remote="127.0.0.1"),
    Case("ipv6 of no provider", "2001:db8:ffff::1", "GET", MANIFEST, 200),
]


def send_case(port: int, case: Case, path_prefix: str = "") -> Response:
    return http_request(port, case.method, path_prefix + case.path, client=case.client,
                        raw_target=case.raw_target)


def case_problems(case: Case, resp: Response) -> list[str]:
    """What is wrong with a backend's answer to a case (empty when all is right)."""
    out = []
    if resp.status != case.status:
        out.append(f"status {resp.status}, want {case.status}")
    if resp.location != case.location:
        out.append(f"Location {resp.location!r}, want {case.location!r}")
    for name, value in case.headers:
        if resp.header(name) != value:
            out.append(f"{name}: {resp.header(name)!r}, want {value!r}")
    if case.action == "pass" and case.method != "HEAD" and resp.body != case.origin_body:
        out.append(f"body {resp.body[:80]!r}, want the origin's {case.origin_body!r}")
    if case.action == "respond":
        if resp.body != b"":
            out.append(f"body {resp.body[:80]!r}, want empty")
        if resp.header("Content-Length") not in ("0", None):
            out.append(f"Content-Length {resp.header('Content-Length')}, want 0")
    return out


LOG_FIELDS = ("action", "provider", "region", "prefix", "asn", "route")


def log_problems(case: Case, entry: dict) -> list[str]:
    """What is wrong with the access-log entry of a case."""
    out = []
    remote = case.remote or case.client
    want = {
        "client": remote, "status": case.status, "location": case.location or "",
        "action": case.action, "target": case.location or "", "provider": case.provider,
        "region": case.region, "prefix": case.prefix, "asn": case.asn, "route": case.route,
    }
    for key, value in want.items():
        if value is not None and entry.get(key) != value:
            out.append(f"log {key}={entry.get(key)!r}, want {value!r}")
    return out

"""A byte-exact HTTP/1.1 client for loopback servers, free ports and readiness waits.

Request targets and header values are sent byte for byte (CR, LF, NUL and non-UTF-8 bytes
included): the point is to see what each host does with them. The source address of the
connection is chosen (any 127.0.0.0/8 address, or ::1), so a TCP peer is real.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


def header_value(headers, name: str):
    """The first value of header `name` (case-insensitive) in a list of (name, value), or None."""
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


@dataclass
class WireRequest:
    """One HTTP request as it goes on the wire."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    source: str = "127.0.0.1"          # the TCP peer the backend sees

    def encode(self, keepalive: bool = False) -> bytes:
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in self.headers]
        lines.append(b"Connection: keep-alive" if keepalive else b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def header(self, name: bytes) -> bytes | None:
        return header_value(self.headers, name)


@dataclass
class WireResponse:
    """One HTTP response: status, headers in order (latin-1 text), the body (de-chunked)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float = 0.0               # request sent → response read

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def location(self) -> str | None:
        return self.header("Location")

    def headers_named(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class WireError(ConnectionError):
    """No HTTP response: the connection was refused, reset or closed without an answer.
    `refused` is True when a connected server closed or answered without HTTP/1.x (a refusal of
    the request itself, not an unreachable server)."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    status_line, *lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise WireError(f"not an HTTP/1.x response: {status_line[:80]!r}", refused=True)
    headers = []
    for line in lines:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """Decodes a chunked body; returns (data, complete)."""
    out = bytearray()
    rest = body
    while True:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return bytes(out), False
        try:
            size = int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return bytes(out), True
        if size == 0:
            return bytes(out), True
        if len(after) < size + 2:
            return bytes(out), False
        out += after[:size]
        rest = after[size + 2:]


def _body_state(method: bytes, status: int, headers, buffer: bytes) -> tuple[bytes, bool] | None:
    """(body, complete) when the framing is known from the headers; None: read until close."""
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", True
    te = next((v for k, v in headers if k.lower() == "transfer-encoding"), None)
    if te and "chunked" in te.lower():
        return _dechunk(buffer)
    cl = next((v for k, v in headers if k.lower() == "content-length"), None)
    if cl is not None and cl.strip().isdigit():
        n = int(cl)
        return buffer[:n], len(buffer) >= n
    return None


def _connect(port: int, source: str, timeout: float, host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in source or ":" in host else socket.AF_INET
    if ":" in source and ":" not in host:
        host = "::1"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((source, 0))
        sock.connect((host, port))
    except OSError as e:
        sock.close()
        raise WireError(f"cannot connect from {source} to {host}:{port}: {e}") from e
    return sock


def send(port: int, request: WireRequest, timeout: float = 10.0, host: str = "127.0.0.1",
         until_close: bool = False) -> WireResponse:
    """Sends one request over a new connection (Connection: close) and reads the answer; with
    `until_close`, also waits until the server closes the connection (nginx has then logged it)."""
    sock = _connect(port, request.source, timeout, host)
    try:
        start = time.perf_counter()
        try:
            sock.sendall(request.encode(keepalive=False))
        except OSError:
            pass  # the server may answer (400/431) and close before reading everything
        chunks = []
        deadline = time.monotonic() + timeout
        head = None
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            raw = b"".join(chunks)
            if head is None and b"\r\n\r\n" in raw:
                head, _, rest = raw.partition(b"\r\n\r\n")
            if head is not None:
                _, _, rest = raw.partition(b"\r\n\r\n")
                status, headers = _parse_head(head)
                state = _body_state(request.method, status, headers, rest)
                if state is not None and state[1] and not until_close:
                    return WireResponse(status, headers, state[0], time.perf_counter() - start)
        elapsed = time.perf_counter() - start
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise WireError(f"no HTTP/1.x response from port {port} ({len(raw)} bytes: {raw[:60]!r})", refused=True)
    status, headers = _parse_head(head)
    state = _body_state(request.method, status, headers, rest)
    return WireResponse(status, headers, state[0] if state else rest, elapsed)


class KeepAliveClient:
    """One persistent connection per (port, source); reconnects when the server closes it."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1"):
        self.port, self.timeout, self.host = port, timeout, host
        self.sock: socket.socket | None = None
        self.source: str | None = None
        self.buffer = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def send(self, request: WireRequest) -> WireResponse:
        for attempt in range(2):
            if self.sock is None or self.source != request.source:
                self.close()
                self.sock = _connect(self.port, request.source, self.timeout, self.host)
                self.source = request.source
            try:
                return self._exchange(request)
            except (WireError, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise WireError("unreachable")

    def _exchange(self, request: WireRequest) -> WireResponse:
        assert self.sock is not None
        start = time.perf_counter()
        self.sock.sendall(request.encode(keepalive=True))
        buffer = self.buffer
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WireError("connection closed before a response")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status, headers = _parse_head(head)
        while True:
            state = _body_state(request.method, status, headers, rest)
            if state is not None and state[1]:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                if state is None:
                    self.close()
                    return WireResponse(status, headers, rest, time.perf_counter() - start)
                raise WireError("connection closed inside a response body")
            rest += chunk
        body = state[0]
        elapsed = time.perf_counter() - start
        # Whatever follows the body belongs to the next response (none is pipelined here).
        te = next((v for k, v in headers if k.lower() == "transfer-encoding"), "")
        if "chunked" in te.lower():
            end = rest.find(b"0\r\n\r\n")
            self.buffer = rest[end + 5:] if end >= 0 else b""
        else:
            self.buffer = rest[len(body):] if request.method != b"HEAD" else rest
        conn = next((v for k, v in headers if k.lower() == "connection"), "")
        if "close" in conn.lower():
            self.close()
        return WireResponse(status, headers, body, elapsed)


# --------------------------------------------------------------------------- conveniences


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


def request(port: int, method: str | bytes = "GET", path: str | bytes = "/", *, client: str | None = None,
            headers=(), source: str = "127.0.0.1", host: str | bytes = "mirror.test",
            timeout: float = 10.0) -> WireResponse:
    """One request over a new connection from `source`. `client` is sent as X-Forwarded-For;
    `headers` is a dict or a list of (name, value); `path` is sent byte for byte."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if client is not None:
        items.insert(0, ("X-Forwarded-For", client))
    wire = WireRequest(_bytes(method), _bytes(path), [(b"Host", _bytes(host))]
                       + [(_bytes(k), _bytes(v)) for k, v in items], source)
    return send(port, wire, timeout=timeout)


def exchange(port: int, data: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    """Sends raw bytes and returns everything the server answers before it closes (bounded)."""
    sock = _connect(port, source, timeout)
    try:
        try:
            sock.sendall(data)  # no half-close: nginx takes EOF from a client as an abort (499)
        except OSError:
            pass
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    return b"".join(chunks)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on host:port right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect((host, port))
            return True
        except OSError:
            return False


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Waits until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while not accepts(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.05)


def wait_http(port: int, path: str, status: int = 200, timeout: float = 20.0) -> WireResponse:
    """Polls until GET `path` answers `status` (bounded)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = request(port, "GET", path, timeout=2)
            if resp.status == status:
                return resp
            last = resp.status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"127.0.0.1:{port}{path} did not answer {status} in {timeout}s (last: {last})")

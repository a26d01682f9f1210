"""The origin behind a proxy or an nginx under test, in-process on a free loopback port."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Set on every answer of the origin, so a client can tell "the origin answered" from a proxy's own
# answer (the nginx configs' own origin server blocks set it too).
ORIGIN_HEADER = "X-Conformance-Origin"


def origin_body(method: str, target: str) -> bytes:
    """What the origin answers to `method target`."""
    return f"origin {method} {target}\n".encode("latin-1", "replace")


class Origin:
    """Answers every method `origin <METHOD> <target>\\n` with ORIGIN_HEADER and records the
    requests it saw in `seen` as (method, target, headers)."""

    def __init__(self):
        self.seen: list[tuple[str, str, dict]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(min(length, 1 << 20))
                seen.append((self.command, self.path, dict(self.headers)))
                body = origin_body(self.command, self.path)
                head = (f"HTTP/1.1 200 OK\r\n{ORIGIN_HEADER}: 1\r\nContent-Type: text/plain\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                # One write: no Nagle/delayed-ACK stall on keep-alive connections from the proxies.
                self.wfile.write(head + (body if self.command != "HEAD" else b""))
                self.wfile.flush()

            def __getattr__(self, name):
                if name.startswith("do_"):
                    return self._answer
                raise AttributeError(name)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

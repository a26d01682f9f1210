"""A loopback HTTP server publishing source files as their publishers do, for `redirector update`:
strong ETags and Last-Modified, honouring If-None-Match and If-Modified-Since with 304, and a
request log. Per path it can also misbehave: any status, a redirect, a slow trickle.

In process: `SourceServer()` (then `.publish(...)`, `.stop()`); on its own (scripts/bench-update.sh):
`python3 -m testkit.sourceserver DIRECTORY PORT_FILE` serves every file of DIRECTORY and writes its
port to PORT_FILE.
"""

from __future__ import annotations

import email.utils
import hashlib
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Published:
    """One path's answer: the body with its validators, or a misbehaviour."""

    body: bytes
    modified: float                    # Unix seconds, sent as Last-Modified
    status: int = 200                  # anything but 200 is sent without validators
    location: str | None = None        # with a 3xx status
    trickle: float | None = None       # seconds between 64-byte pieces of the body

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'


class SourceServer:
    """Serves `publish`ed paths on 127.0.0.1 (a free port); `log` holds (method, path, headers)."""

    def __init__(self):
        self.files: dict[str, Published] = {}
        self.log: list[tuple[str, str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.log.append((self.command, self.path, dict(self.headers)))
                item = server.files.get(self.path)
                if item is None:
                    return self._send(404, b"not found\n", {})
                if item.status != 200:
                    headers = {"Location": item.location} if item.location else {}
                    return self._send(item.status, item.body, headers)
                validators = {"ETag": item.etag, "Last-Modified": email.utils.formatdate(item.modified, usegmt=True)}
                if self._not_modified(item):
                    return self._send(304, b"", validators)
                if item.trickle is None:
                    return self._send(200, item.body, validators)
                self._head(200, len(item.body), validators)
                try:
                    for start in range(0, len(item.body), 64):
                        self.wfile.write(item.body[start:start + 64])
                        self.wfile.flush()
                        time.sleep(item.trickle)
                except OSError:  # the client gave up, as it should
                    self.close_connection = True

            def _not_modified(self, item: Published) -> bool:
                match = self.headers.get("If-None-Match")
                if match is not None:
                    return item.etag in [tag.strip() for tag in match.split(",")]
                since = self.headers.get("If-Modified-Since")
                parsed = email.utils.parsedate_to_datetime(since).timestamp() if since else None
                return parsed is not None and int(item.modified) <= parsed

            def _head(self, status: int, length: int, headers: dict):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def _send(self, status: int, body: bytes, headers: dict):
                self._head(status, len(body), headers)
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def publish(self, path: str, body: bytes, modified: float | None = None, **behaviour) -> None:
        """Serves `body` at `path`, modified now (a second later than before) unless given."""
        previous = self.files.get(path)
        if modified is None:
            modified = max(time.time(), previous.modified + 1 if previous else 0)
        self.files[path] = Published(body=body, modified=modified, **behaviour)

    def requests(self, path: str) -> list[dict]:
        """The headers of every request for `path` so far."""
        return [headers for _, seen, headers in self.log if seen == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str]) -> None:
    directory, port_file = Path(argv[1]), Path(argv[2])
    server = SourceServer()
    for file in sorted(directory.iterdir()):
        if file.is_file():
            server.publish("/" + file.name, file.read_bytes(), modified=file.stat().st_mtime)
    port_file.write_text(str(server.port))
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main(sys.argv)

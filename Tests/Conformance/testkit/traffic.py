"""Background traffic for reload and fault tests: threads sending one request over and over."""

from __future__ import annotations

import threading
import time


class Traffic:
    """`threads` threads calling `send()` (one request on a new connection, returning a response)
    until stop() (10 minutes at most), recording every answer as (time, status, Location) in
    `answers` and every failure in `errors`."""

    def __init__(self, send, threads: int = 3):
        self.send, self.stop_event = send, threading.Event()
        self.answers: list[tuple[float, int, str | None]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        deadline = time.monotonic() + 600
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                resp = self.send()
                self.answers.append((time.monotonic(), resp.status, resp.location))
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(60)

    def outcomes(self, after: float = 0.0) -> list[tuple[int, str | None]]:
        """(status, Location) of the answers received after monotonic time `after`."""
        return [(status, location) for at, status, location in self.answers if at > after]

    def problems(self, allowed: set) -> list[str]:
        """Answers other than the `allowed` (status, Location) pairs, and failed requests."""
        wrong = [a for a in self.outcomes() if a not in allowed]
        out = [f"{len(wrong)} wrong answers, e.g. {wrong[:3]}"] if wrong else []
        return out + ([f"{len(self.errors)} failed requests, e.g. {self.errors[:3]}"] if self.errors else [])

"""pytest fixtures for the NGINX integration tests; helpers live in harness.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness import (CLI, FIXTURES, LIBRARY, MODULE, MODULE_DIR, REPO, Nginx, compile_snapshot,
                     make_prefix, render, run)


# --------------------------------------------------------------------------- strictness


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With REDIRECTOR_REQUIRE_ALL=1 (scripts/test.sh, CI) a skipped test is a failure: every
    prerequisite is installed and built there, so a skip would hide a test that did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("REDIRECTOR_REQUIRE_ALL") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but REDIRECTOR_REQUIRE_ALL=1 requires every test to run: {report.longrepr}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tmp_root():
    """A world-readable scratch directory for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="redirector-it-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cli() -> Path:
    if not CLI.exists():
        pytest.skip(f"{CLI} not built (swift build -c release)")
    return CLI


@pytest.fixture(scope="session")
def library() -> Path:
    if not LIBRARY.exists():
        pytest.skip(f"{LIBRARY} not built (scripts/build-library.sh)")
    return LIBRARY


def _stale(target: Path, sources: list[Path]) -> bool:
    if not target.exists():
        return True
    t = target.stat().st_mtime
    return any(s.exists() and s.stat().st_mtime > t for s in sources)


@pytest.fixture(scope="session")
def nginx_module(library) -> Path:
    """out/nginx/ngx_http_redirector_module.so, (re)built when missing or stale."""
    sources = [REPO / "nginx" / "ngx_http_redirector_module.c", REPO / "nginx" / "config",
               REPO / "include" / "redirector.h", library]
    if _stale(MODULE, sources) or _stale(MODULE_DIR / "libredirector.so", [library]):
        run([REPO / "scripts" / "build-nginx-module.sh"], timeout=600)
    assert MODULE.exists()
    return MODULE


@pytest.fixture(scope="session")
def snapshots(cli, tmp_root) -> dict[str, Path]:
    """Snapshots compiled from the fixtures: 'main' and 'alt' (a different policy)."""
    out = {}
    for name in ("main", "alt"):
        out[name] = compile_snapshot(FIXTURES / f"{name}.yaml", tmp_root / f"{name}.rdb")
        out[name].chmod(0o644)
    bad = tmp_root / "bad.rdb"
    data = bytearray(out["main"].read_bytes())
    data[len(data) // 2] ^= 0xFF  # checksum mismatch
    bad.write_bytes(bytes(data))
    out["corrupt"] = bad
    garbage = tmp_root / "garbage.rdb"
    garbage.write_bytes(b"this is not a snapshot\n")
    out["garbage"] = garbage
    return out


@pytest.fixture
def nginx_factory(tmp_root):
    """Creates Nginx servers from templates; stops them and checks their logs at teardown."""
    servers: list[Nginx] = []

    def make(template: Path, values, name: str = "nginx.conf") -> Nginx:
        """values: a placeholder dict, or a function of the new prefix returning one."""
        prefix = make_prefix(tmp_root)
        if callable(values):
            values = values(prefix)
        conf = render(template, prefix / name, values)
        server = Nginx(prefix=prefix, conf=conf)
        servers.append(server)
        return server

    yield make

    problems = []
    for s in servers:
        s.stop()
        bad = s.bad_log_lines()
        if bad:
            problems.append(f"{s.error_log}:\n" + "\n".join(bad))
    assert not problems, "error log problems:\n" + "\n".join(problems)

"""pytest fixtures of the integration tests. The helpers are the test kit's
(Tests/Conformance/testkit), the expectations the conformance suites' (Tests/Conformance/cases);
pytest.ini puts both packages on the path."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conformance.run import compile_suites, run_suites
from conformance.suite import discover
from testkit import paths
from testkit.http import free_port
from testkit.nginx import Nginx, example_nginx, make_prefix, render
from testkit.processes import run
from testkit.snapshots import compile_snapshot


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


# --------------------------------------------------------------------------- built artifacts


@pytest.fixture(scope="session")
def tmp_root():
    """A world-readable scratch directory for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="redirector-it-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cli() -> Path:
    if not paths.CLI.exists():
        pytest.skip(f"{paths.CLI} not built (swift build -c release)")
    return paths.CLI


@pytest.fixture(scope="session")
def library() -> Path:
    if not paths.LIBRARY.exists():
        pytest.skip(f"{paths.LIBRARY} not built (scripts/build-library.sh)")
    return paths.LIBRARY


def _stale(target: Path, sources: list[Path]) -> bool:
    if not target.exists():
        return True
    t = target.stat().st_mtime
    return any(s.exists() and s.stat().st_mtime > t for s in sources)


@pytest.fixture(scope="session")
def nginx_module(library) -> Path:
    """out/nginx/ngx_http_redirector_module.so, (re)built when missing or stale."""
    sources = [paths.REPO / "nginx" / "ngx_http_redirector_module.c", paths.REPO / "nginx" / "config",
               paths.HEADER, library]
    if _stale(paths.MODULE, sources) or _stale(paths.MODULE_DIR / "libredirector.so", [library]):
        run([paths.REPO / "scripts" / "build-nginx-module.sh"], timeout=600)
    assert paths.MODULE.exists()
    return paths.MODULE


@pytest.fixture(scope="session")
def snapshots(cli, tmp_root) -> dict[str, Path]:
    """Snapshots of the fixtures' policies: 'main' and 'alt' (another aws host and status);
    'corrupt' (main with a byte flipped: checksum mismatch) and 'garbage' (not a snapshot)."""
    out = {name: compile_snapshot(paths.FIXTURES / f"{name}.yaml", tmp_root / f"{name}.rdb") for name in ("main", "alt")}
    data = bytearray(out["main"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    out["corrupt"] = tmp_root / "bad.rdb"
    out["corrupt"].write_bytes(bytes(data))
    out["garbage"] = tmp_root / "garbage.rdb"
    out["garbage"].write_bytes(b"this is not a snapshot\n")
    return out


# --------------------------------------------------------------------------- nginx


class NginxServers:
    """The nginx servers one test creates; the fixture stops them and fails the test on alerts,
    emergencies or crashes in their logs (except the lines a test allows, server.allowed_log)."""

    def __init__(self, root: Path):
        self.root, self.servers = root, []

    def example(self, kind: str, snapshot: Path, start: bool = True, **options) -> Nginx:
        """The shipped example ("module" or "lua", see testkit.nginx.example_nginx) for `snapshot`."""
        server = example_nginx(kind, self.root, snapshot, **options)
        self.servers.append(server)
        return server.start() if start else server

    def from_template(self, template: Path, values: dict) -> Nginx:
        """`template` rendered with `values` and @PORT@ (a free port), not started."""
        prefix, port = make_prefix(self.root), free_port()
        server = Nginx(prefix, render(template, prefix / "nginx.conf", {**values, "PORT": port}), port=port)
        self.servers.append(server)
        return server


@pytest.fixture
def nginx(tmp_root):
    servers = NginxServers(tmp_root)
    yield servers
    problems = []
    for s in servers.servers:
        s.stop()
        problems += [f"{s.error_log}: {line}" for line in s.problems()]
    assert not problems, "error log problems:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the conformance suites


@pytest.fixture(scope="session")
def suites():
    """Every suite in Tests/Conformance/cases."""
    return discover()


@pytest.fixture(scope="session")
def compiled_suites(cli, suites, tmp_root):
    """Every suite compiled once per session: (snapshot by suite name, error by suite name)."""
    return compile_suites(suites, tmp_root / "conformance")


@pytest.fixture(scope="session")
def suite_results(suites, compiled_suites, tmp_root):
    """`suite_results(backend)`: every suite's cases run on that conformance backend, once per
    session (conformance.run.RunResult)."""
    cache = {}

    def results(backend: str):
        if backend not in cache:
            cache[backend] = run_suites(suites, [backend], tmp_root / "conformance" / backend, bench_seconds=1.0,
                                        compiled=compiled_suites)
        return cache[backend]
    return results

"""`redirector update` against a real HTTP server on 127.0.0.1 (testkit/sourceserver.py) publishing
the example data with ETag and Last-Modified: the first fetch installs a snapshot whose provenance
names each URL and its validators; an all-304 run installs nothing; a changed file installs a new
snapshot and keeps the previous ones; hostile answers (truncated JSON, an HTML page with 200, a
gzip bomb, a 10x shrink, a slow trickle, a redirect to another host, a 500) each fail with the
source, the step and the reason, leaving the installed snapshot byte-identical. Run:
`REDIRECTOR_CLI=$PWD/.build/debug/redirector pytest -q Tests/Integration/test_update.py`.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from testkit import paths
from testkit.processes import run
from testkit.sourceserver import SourceServer

DATA = paths.EXAMPLES / "data"
AWS, GCP, ASN = "/aws-ip-ranges.json", "/gcp-cloud.json", "/k8s-asn-prefixes.dat.gz"


@pytest.fixture(scope="module")
def server():
    server = SourceServer()
    yield server
    server.stop()


def publish_examples(server: SourceServer) -> None:
    """The example data as published: AWS and GCP JSON, the pyasn dump gzipped."""
    server.publish(AWS, (DATA / "aws-ip-ranges.json").read_bytes(), modified=1_700_000_000)
    server.publish(GCP, (DATA / "gcp-cloud.json").read_bytes(), modified=1_700_000_000)
    server.publish(ASN, gzip.compress((DATA / "k8s-asn-prefixes.dat").read_bytes(), mtime=0), modified=1_700_000_000)


def write_config(directory: Path, server: SourceServer) -> Path:
    """examples/simple/redirector.yaml with its AWS, GCP and pyasn sources named by URL; its ASN
    table's location database is named where none is, so its `otherwise` (the pyasn excerpt, by
    URL) is what update fetches and compiles."""
    text = (paths.EXAMPLES / "simple" / "redirector.yaml").read_text()
    assert "path: /usr/share/libloc-location/location.db" in text
    text = text.replace("path: /usr/share/libloc-location/location.db", "path: /nonexistent/location.db")
    text = text.replace("path: ../data/aws-ip-ranges.json", f"url: '{server.url(AWS)}'")
    text = text.replace("path: ../data/gcp-cloud.json", f"url: '{server.url(GCP)}'")
    text = text.replace("path: ../data/k8s-asn-prefixes.dat", f"url: '{server.url(ASN)}'")
    text = text.replace("path: ../data/k8s.io-asns", f"path: {DATA / 'k8s.io-asns'}")
    config = directory / "redirector.yaml"
    config.write_text(text)
    return config


class Site:
    """A config, its snapshot and cache in one directory."""

    def __init__(self, directory: Path, server: SourceServer):
        self.directory, self.server = directory, server
        directory.mkdir(parents=True, exist_ok=True)
        self.config = write_config(directory, server)
        self.snapshot = directory / "out.rdb"

    def update(self, *options, check=True):
        proc = run([paths.CLI, "update", "--config", self.config, "--output", self.snapshot, *options], check=False, timeout=300)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def provenance(self) -> dict:
        out = run([paths.CLI, "inspect", "--provenance", "--json", self.snapshot]).stdout
        return {source["url"] or source["name"]: source for source in json.loads(out)["sources"]}


@pytest.fixture(scope="module")
def installed(cli, server, tmp_root) -> Path:
    """A first update of the examples: the baseline every hostile case copies."""
    publish_examples(server)
    site = Site(tmp_root / "update-baseline", server)
    site.update()
    return site.directory


@pytest.fixture
def site(installed, server, tmp_path) -> Site:
    """A copy of the baseline (snapshot and cache), with the examples published again."""
    publish_examples(server)
    directory = tmp_path / "site"
    shutil.copytree(installed, directory)
    return Site(directory, server)


def assert_refused(site: Site, proc, *reason: str) -> None:
    """The update failed with exit 1 and every `reason` in stderr, and installed nothing."""
    before = (site.directory.parent / "before.rdb").read_bytes()
    assert proc.returncode == 1, proc.stderr
    for text in reason:
        assert text in proc.stderr, proc.stderr
    assert site.snapshot.read_bytes() == before
    assert not Path(f"{site.snapshot}.1").exists()
    assert not [p for p in site.directory.rglob("*.download")]


def keep_before(site: Site) -> None:
    shutil.copy(site.snapshot, site.directory.parent / "before.rdb")


def test_first_fetch_records_urls_and_validators(installed, server):
    site = Site(installed, server)
    sources = site.provenance()
    for path, body in [(AWS, (DATA / "aws-ip-ranges.json").read_bytes()), (GCP, (DATA / "gcp-cloud.json").read_bytes())]:
        source = sources[server.url(path)]
        assert source["etag"] == server.files[path].etag
        assert source["lastModified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert source["sha256"] == hashlib.sha256(body).hexdigest()
        assert source["fetchedAt"] and source["prefixes"] > 0
        assert source["path"].startswith(str(site.directory / "out.rdb.cache") + "/")
    assert sources[server.url(ASN)]["sha256"] == hashlib.sha256(server.files[ASN].body).hexdigest()


def test_all_not_modified_installs_nothing(site, server):
    before = site.snapshot.read_bytes()
    mtime = site.snapshot.stat().st_mtime_ns
    seen = len(server.log)
    proc = site.update("--reload-command", f"touch {site.directory / 'reloaded'}")
    assert proc.stdout.startswith("unchanged"), proc.stdout + proc.stderr
    assert site.snapshot.read_bytes() == before and site.snapshot.stat().st_mtime_ns == mtime
    assert not Path(f"{site.snapshot}.1").exists() and not (site.directory / "reloaded").exists()
    conditional = [headers for _, _, headers in server.log[seen:]]
    assert len(conditional) == 3 and all("If-None-Match" in headers for headers in conditional)


def test_changed_source_installs_and_keeps_the_previous(site, server):
    before = site.snapshot.read_bytes()
    marker = site.directory / "reloaded"
    gcp = json.loads((DATA / "gcp-cloud.json").read_text())
    gcp["syncToken"] = "1999999999999"
    server.publish(GCP, json.dumps(gcp).encode())
    site.update("--reload-command", f"touch {marker}")
    assert marker.exists()
    assert Path(f"{site.snapshot}.1").read_bytes() == before
    assert site.provenance()[server.url(GCP)]["publisherVersion"] == "1999999999999"
    # The cache now holds the new copy: compile reads it from there, and without it says to update.
    out = site.directory / "from-cache.rdb"
    run([paths.CLI, "compile", "-c", site.config, "-o", out, "--cache", f"{site.snapshot}.cache"])
    assert json.loads(run([paths.CLI, "inspect", "--provenance", "--json", out]).stdout)["sources"][1]["publisherVersion"] == "1999999999999"
    refused = run([paths.CLI, "compile", "-c", site.config, "-o", out], check=False)
    assert refused.returncode == 1 and "run `redirector update`" in refused.stderr


def test_keep_bounds_the_rotation(site, server):
    for version in range(4):
        server.publish(GCP, (DATA / "gcp-cloud.json").read_bytes() + b" " * (version + 1))
        site.update("--keep", "2")
    assert Path(f"{site.snapshot}.1").exists() and Path(f"{site.snapshot}.2").exists()
    assert not Path(f"{site.snapshot}.3").exists()
    server.publish(GCP, (DATA / "gcp-cloud.json").read_bytes())
    site.update("--keep", "0")
    assert not list(site.directory.glob("out.rdb.[0-9]*"))


def test_failing_reload_command_keeps_the_new_snapshot(site, server):
    server.publish(GCP, (DATA / "gcp-cloud.json").read_bytes() + b"\n")
    proc = site.update("--reload-command", "exit 7", check=False)
    assert proc.returncode == 1 and "reload: exited with status 7; the new snapshot stays installed" in proc.stderr
    assert site.provenance()[server.url(GCP)]["sha256"] == hashlib.sha256(server.files[GCP].body).hexdigest()


def test_truncated_json_is_refused(site, server):
    keep_before(site)
    body = (DATA / "aws-ip-ranges.json").read_bytes()
    server.publish(AWS, body[: len(body) // 2])
    assert_refused(site, site.update(check=False), f"update: {server.url(AWS)}: validate:")


def test_html_error_page_with_200_is_refused(site, server):
    keep_before(site)
    server.publish(GCP, b"<html><body><h1>503 Service Unavailable</h1></body></html>\n")
    assert_refused(site, site.update(check=False), f"update: {server.url(GCP)}: validate:")


def test_gzip_bomb_is_capped_after_decompression(site, server):
    keep_before(site)
    server.publish(ASN, gzip.compress(b"\0" * (64 << 20), compresslevel=9, mtime=0))
    assert len(server.files[ASN].body) < 1 << 20
    assert_refused(site, site.update("--max-bytes", str(8 << 20), check=False),
                   f"update: {server.url(ASN)}: validate:", "larger than 8388608 bytes (decompressed)")


def test_download_over_max_bytes_is_refused(site, server):
    keep_before(site)
    server.publish(AWS, (DATA / "aws-ip-ranges.json").read_bytes() + b" ")
    assert_refused(site, site.update("--max-bytes", "1000000", check=False),
                   f"update: {server.url(AWS)}: fetch: Content-Length", "--max-bytes")


def test_tenfold_shrink_needs_force(site, server):
    keep_before(site)
    aws = json.loads((DATA / "aws-ip-ranges.json").read_text())
    aws["prefixes"], aws["ipv6_prefixes"] = aws["prefixes"][::10], aws["ipv6_prefixes"][::10]
    server.publish(AWS, json.dumps(aws).encode())
    assert_refused(site, site.update(check=False), f"update: {server.url(AWS)}: validate: prefixes fell from", "--max-shrink 50")
    site.update("--force")
    assert site.provenance()[server.url(AWS)]["prefixes"] < 2000


def test_slow_trickle_times_out(site, server):
    keep_before(site)
    server.publish(GCP, (DATA / "gcp-cloud.json").read_bytes() + b" ", trickle=0.05)
    proc = site.update("--timeout", "2", "--retries", "0", check=False)
    assert_refused(site, proc, f"update: {server.url(GCP)}: fetch:", "--timeout")


def test_redirect_to_another_host_is_refused(site, server):
    keep_before(site)
    server.publish(GCP, b"", status=302, location=f"http://127.0.0.2:{server.port}{GCP}")
    assert_refused(site, site.update(check=False), f"update: {server.url(GCP)}: fetch: redirected to another host, 127.0.0.2")


def test_redirect_within_the_host_is_followed(site, server):
    body = (DATA / "gcp-cloud.json").read_bytes() + b"\n\n"
    server.publish("/moved/gcp-cloud.json", body)
    server.publish(GCP, b"", status=301, location="/moved/gcp-cloud.json")
    site.update()
    assert site.provenance()[server.url(GCP)]["sha256"] == hashlib.sha256(body).hexdigest()


def test_server_error_is_retried(site, server):
    keep_before(site)
    server.publish(GCP, b"oops\n", status=500)
    seen = len(server.requests(GCP))
    assert_refused(site, site.update("--retries", "2", check=False), f"update: {server.url(GCP)}: fetch: HTTP 500", "after 3 attempts")
    assert len(server.requests(GCP)) - seen == 3


def test_client_error_is_not_retried(site, server):
    keep_before(site)
    server.publish(GCP, b"gone\n", status=404)
    seen = len(server.requests(GCP))
    assert_refused(site, site.update("--retries", "2", check=False), f"update: {server.url(GCP)}: fetch: HTTP 404")
    assert len(server.requests(GCP)) - seen == 1


def test_usage_errors_and_bad_urls(site, server, cli):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIRECTOR_")}
    assert run([cli, "update", "--output", site.snapshot], check=False, env=env).returncode == 64
    bad = site.directory / "bad.yaml"
    bad.write_text(site.config.read_text().replace(server.url(GCP), "file:///etc/passwd"))
    proc = run([cli, "update", "--config", bad, "--output", site.snapshot], check=False)
    assert proc.returncode == 1 and "providers[1].sources[0].url: 'file:///etc/passwd' is not an http or https URL" in proc.stderr
    # The environment names config and snapshot for the units that run it.
    proc = run([cli, "update"], check=False, env={**env, "REDIRECTOR_CONFIG": str(site.config), "REDIRECTOR_SNAPSHOT": str(site.snapshot)})
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged"), proc.stderr


def test_one_update_per_cache(site):
    with open(f"{site.snapshot}.cache/lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = site.update(check=False)
    assert proc.returncode == 1 and "fetch: another update is running" in proc.stderr, proc.stderr
    assert site.update().stdout.startswith("unchanged")

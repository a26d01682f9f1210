"""Presence-checked redirects with real registries and a real client: registry.k8s.io's policy
(examples/registry.k8s.io, only its hosts replaced by loopback servers) in front of Debian's
`docker-registry` (the CNCF distribution registry) as the upstream, with regional "buckets" that
are nginx servers holding some of the blobs under /containers/images/<digest>. Images are built
here (OCI layouts with random layers) and pushed with `skopeo`; `skopeo copy` then pulls them
through each backend (standalone sidecar, sidecar behind Envoy, NGINX module, Lua binding) from
clients in AWS regions, Google Cloud and elsewhere (addresses via trusted X-Forwarded-For).

What is asserted: every pull succeeds with the pushed digests; each blob was served by the
client's bucket when that bucket had it and by the registry when it had not (the servers' access
logs), and nginx's access log lists each check; a bucket shut down in the middle of a pull does not
fail it; 100 concurrent requests for one uncached blob make exactly one HEAD at the bucket; a
million distinct digests keep the server's memory flat; a bucket that answers slowly, resets,
answers garbage or redirects the HEAD ends in a redirect to the next bucket within the check
timeout.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import random
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytricia
import yaml

from testkit import paths
from testkit.http import free_port, request, wait_for_port
from testkit.mirrors import Mirror, start_probe
from testkit.nginx import Nginx, make_prefix, render
from testkit.processes import Process, run, wait_until
from testkit.proxies import missing, start_envoy
from testkit.sidecar import Sidecar
from testkit.snapshots import compile_snapshot

EXAMPLE = paths.EXAMPLES / "registry.k8s.io"
DATA = paths.EXAMPLES / "data"
UPSTREAM = "https://us-central1-docker.pkg.dev"
CDN = "https://d1be1w964nk82h.cloudfront.net"
PREFIX = "k8s-artifacts-prod/images"   # the upstream repository prefix of the policy's rewrites


# --------------------------------------------------------------------------- servers and images

class Registry(Process):
    """`docker-registry serve` on a loopback port, filesystem storage in `work`, access log on."""

    def __init__(self, work: Path):
        self.port = free_port()
        work.mkdir(parents=True, exist_ok=True)
        config = work / "registry.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
            "http": {"addr": f"127.0.0.1:{self.port}"}}))
        super().__init__("registry", ["docker-registry", "serve", config], work / "registry.log")

    def blob_gets(self) -> list[str]:
        """Digests of the blobs GET from the registry so far (its access log)."""
        return re.findall(r'"GET /v2/[^ ]*/blobs/(sha256:[0-9a-f]{64}) HTTP', self.log_text())


@dataclass
class Image:
    """An image built here: its name, tag and the digests of its config and layers."""
    name: str
    tag: str
    blobs: list[str]
    manifest: str


def build_image(layout: Path, name: str, tag: str, rng: random.Random, layers: int = 3) -> Image:
    """An OCI image layout with `layers` random tar layers, a config and a manifest."""
    blobs_dir = layout / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs_dir / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    descriptors = []
    for index in range(layers):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            data = rng.randbytes(rng.randrange(2_000, 200_000))
            info = tarfile.TarInfo(f"{name}/layer-{index}.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        descriptors.append(blob(buffer.getvalue(), "application/vnd.oci.image.layer.v1.tar"))
    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}}).encode(),
                  "application/vnd.oci.image.config.v1+json")
    manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": config, "layers": descriptors}).encode(),
                    "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return Image(name, tag, [config["digest"]] + [d["digest"] for d in descriptors], manifest["digest"])


def skopeo(*args: str, timeout: float = 120):
    return run(["skopeo", "--insecure-policy", *args], timeout=timeout)


def pushed_image(registry: "Registry", name: str, tag: str) -> Image:
    """The image as the registry holds it (skopeo may compress layers and rewrite the manifest
    on the way): the digest of its manifest's bytes, and its config and layer digests."""
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://127.0.0.1:{registry.port}/{PREFIX}/{name}:{tag}").stdout
    manifest = json.loads(raw)
    digests = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    return Image(name, tag, digests, "sha256:" + hashlib.sha256(raw.encode()).hexdigest())


def fill_bucket(root: Path, registry: "Registry", images: list[Image], digests: list[str]) -> None:
    """Copies `digests`, fetched from the registry, into a bucket tree as /containers/images/<digest>."""
    objects = root / "containers" / "images"
    objects.mkdir(parents=True, exist_ok=True)
    for digest in digests:
        image = next(image for image in images if digest in image.blobs)
        with urllib.request.urlopen(f"{registry_url(registry)}/v2/{PREFIX}/{image.name}/blobs/{digest}", timeout=30) as answer:
            (objects / digest).write_bytes(answer.read())
    for path in [root, root / "containers", objects, *objects.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)


# --------------------------------------------------------------------------- clients

def clients() -> dict[str, str]:
    """A client address per kind, chosen so that the longest-prefix match over the policy's data
    (pytricia, independent of Redirector) gives that kind: AWS eu-west-1, AWS us-east-1, Google
    Cloud, and an address in neither."""
    trie = pytricia.PyTricia()
    aws = json.loads((DATA / "aws-ip-ranges.json").read_text())
    for entry in aws["prefixes"]:
        trie[entry["ip_prefix"]] = ("aws", entry["region"])
    for entry in json.loads((DATA / "gcp-cloud.json").read_text())["prefixes"]:
        if "ipv4Prefix" in entry:
            trie[entry["ipv4Prefix"]] = ("gcp", entry.get("scope", ""))

    def inside(prefix: str) -> str:
        network = ipaddress.ip_network(prefix)
        return str(network[min(7, network.num_addresses - 1)])

    def first(region: str) -> str:
        for entry in aws["prefixes"]:
            if entry["region"] == region and trie.get(inside(entry["ip_prefix"])) == ("aws", region):
                return inside(entry["ip_prefix"])
        raise AssertionError(f"no AWS {region} address")

    gcp = next(inside(p) for p in trie if trie[p][0] == "gcp" and ":" not in p and trie.get(inside(p))[0] == "gcp")
    elsewhere = "192.0.2.10"
    assert trie.get(elsewhere) is None
    return {"eu": first("eu-west-1"), "us": first("us-east-1"), "gcp": gcp, "elsewhere": elsewhere}


class ClientFront(Nginx):
    """One port per client kind, each proxying to `backend` from 127.0.0.2 with the client's
    address in X-Forwarded-For (what a load balancer in front does); redirects go back as they are."""

    def __init__(self, work: Path, backend: int, addresses: dict[str, str]):
        self.ports = {kind: free_port() for kind in addresses}
        prefix = make_prefix(work)
        servers = "\n".join(f"""
    server {{
        listen 127.0.0.1:{self.ports[kind]};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_bind 127.0.0.2;
            proxy_set_header X-Forwarded-For {address};
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_redirect off;
            proxy_buffering off;
        }}
    }}""" for kind, address in addresses.items())
        conf = prefix / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    {servers}
}}
""")
        super().__init__(prefix, conf, port=next(iter(self.ports.values())))


# --------------------------------------------------------------------------- the network

@dataclass
class Network:
    work: Path
    registry: Registry
    buckets: dict[str, Mirror]
    images: list[Image]
    contents: dict[str, set[str]]      # bucket name -> digests it holds
    snapshot: Path
    addresses: dict[str, str]
    shared: Path


def policy(work: Path, registry: Registry, buckets: dict[str, Mirror]) -> Path:
    """examples/registry.k8s.io/redirector.yaml with its hosts replaced: the upstream registry, the
    CloudFront default and the region table's buckets (us-east-1's and eu-west-1's buckets are
    two loopback buckets, every other region's bucket a third, empty one). Health checks probe
    every 500 ms here instead of 30 s."""
    table = (DATA / "aws-region-to-s3-bucket.csv").read_text().splitlines()
    rows = dict(line.split(",", 1) for line in table[1:] if line and not line.startswith("#"))
    hosts = {rows["us-east-1"]: buckets["us"].url, rows["eu-west-1"]: buckets["eu"].url}
    lines = [table[0]] + [f"{region},{hosts.get(url, buckets['other'].url)}" for region, url in rows.items()]
    (work / "buckets.csv").write_text("\n".join(lines) + "\n")
    text = (EXAMPLE / "redirector.yaml").read_text()
    text = text.replace(UPSTREAM, registry_url(registry)).replace(CDN, buckets["cdn"].url)
    text = text.replace("path: ../data/aws-region-to-s3-bucket.csv", f"path: {work / 'buckets.csv'}")
    text = text.replace("../data/", f"{DATA}/").replace("interval: 30s, timeout: 5s", "interval: 500ms, timeout: 400ms")
    assert UPSTREAM not in text and CDN not in text and "amazonaws.com" not in text
    (work / "redirector.yaml").write_text(text)
    return compile_snapshot(work / "redirector.yaml", work / "registry.rdb")


def registry_url(registry: Registry) -> str:
    return f"http://127.0.0.1:{registry.port}"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None:
        pytest.fail("docker-registry and skopeo are required (scripts/setup.sh installs them)")
    work = tmp_path_factory.mktemp("presence")
    shared = Path(tempfile.mkdtemp(prefix="rdr-buckets-"))   # nginx workers (nobody) read it
    shared.chmod(0o755)
    registry = Registry(work / "registry")
    registry.start_listening(registry.port)
    rng = random.Random(5)
    images = []
    for name, tag in [("pause", "3.9"), ("sig-storage/csi-provisioner", "v3.5.0")]:
        layout = work / "layouts" / name.replace("/", "_")
        build_image(layout, name, tag, rng)
        pushed = f"docker://127.0.0.1:{registry.port}/{PREFIX}/{name}:{tag}"
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", pushed)
        images.append(pushed_image(registry, name, tag))
    pause, csi = images
    contents = {
        "eu": set(pause.blobs[1:]) | {csi.blobs[1]},          # pause's layers and one of csi's, no configs
        "us": set(csi.blobs) | {pause.blobs[0]},              # all of csi, pause's config
        "other": set(),
        "cdn": set(pause.blobs) | set(csi.blobs),
    }
    buckets = {}
    for name, digests in contents.items():
        root = shared / name
        fill_bucket(root, registry, images, sorted(digests))
        buckets[name] = Mirror(name, free_port(), root, work, access_log=True).start()
    snapshot = policy(work, registry, buckets)
    yield Network(work, registry, buckets, images, contents, snapshot, clients(), shared)
    for bucket in buckets.values():
        bucket.stop()
    registry.stop()
    shutil.rmtree(shared, ignore_errors=True)


def served_gets(network: Network, since: dict[str, int]) -> dict[str, list[str]]:
    """The blob GETs each server answered since `since` (per server: entries already seen)."""
    out = {name: [r["uri"].rsplit("/", 1)[1] for r in bucket.requests()[since.get(name, 0):]
                  if r["method"] == "GET" and r["uri"].startswith("/containers/images/")]
           for name, bucket in network.buckets.items()}
    out["registry"] = network.registry.blob_gets()[since.get("registry", 0):]
    return out


def marks(network: Network) -> dict[str, int]:
    marks = {name: len(bucket.requests()) for name, bucket in network.buckets.items()}
    marks["registry"] = len(network.registry.blob_gets())
    return marks


def pull_everything(network: Network, ports: dict[str, int]) -> dict:
    """skopeo inspect and copy of every image from every client kind through `ports`; checks the
    digests and who served each blob. Returns the counts per client kind."""
    expected_bucket = {"eu": "eu", "us": "us", "gcp": None, "elsewhere": "cdn"}
    figures = {}
    for kind, port in ports.items():
        for image in network.images:
            before = marks(network)
            reference = f"docker://127.0.0.1:{port}/{image.name}:{image.tag}"
            inspected = json.loads(skopeo("inspect", "--tls-verify=false", reference).stdout)
            assert inspected["Digest"] == image.manifest, (kind, image.name, inspected["Digest"])
            destination = network.work / "pulls" / f"{kind}-{image.name.replace('/', '_')}-{time.monotonic_ns()}"
            destination.parent.mkdir(exist_ok=True)
            skopeo("copy", "--src-tls-verify=false", "--retry-times", "2", reference, f"oci:{destination}:{image.tag}")
            index = json.loads((destination / "index.json").read_text())
            assert index["manifests"][0]["digest"] == image.manifest
            for digest in image.blobs:   # every blob arrived, and its bytes hash to its name
                data = (destination / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
                assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            served = served_gets(network, before)
            bucket = expected_bucket[kind]
            for digest in image.blobs:
                holder = bucket if bucket and digest in network.contents[bucket] else "registry"
                assert digest in served[holder], (kind, image.name, digest, holder, served)
                others = [name for name, gets in served.items() if name != holder and digest in gets]
                assert not others, (kind, image.name, digest, "also served by", others)
            figures[f"{kind}/{image.name}"] = {name: len(gets) for name, gets in served.items() if gets}
    return figures


# --------------------------------------------------------------------------- the backends

def test_standalone_pulls_blobs_from_the_bucket_that_has_them(network):
    sidecar = Sidecar(network.snapshot, network.work / "standalone.log", ["127.0.0.0/8"],
                      extra_args=["--listen", f"standalone=127.0.0.1:{(port := free_port())}", "--probe",
                                  "--health-state", str(network.work / "standalone.state")]).start()
    front = ClientFront(network.work, port, network.addresses).start()
    try:
        wait_for_port(port, 10)
        figures = pull_everything(network, front.ports)
        print(f"standalone: blobs served {figures}")
        metrics = sidecar.metrics()
        assert metrics['redirector_presence_checks_total{result="present"}'] > 0
        assert metrics['redirector_presence_checks_total{result="absent"}'] > 0
        assert metrics["redirector_presence_fallbacks_total"] > 0
        assert metrics['redirector_presence_cache_lookups_total{result="hit"}'] > 0
    finally:
        front.stop()
        sidecar.stop()


def test_sidecar_behind_envoy_pulls_blobs_from_the_bucket_that_has_them(network):
    if missing("envoy"):
        pytest.fail("; ".join(missing("envoy")))
    sidecar = Sidecar(network.snapshot, network.work / "sidecar.log", ["127.0.0.0/8"], extra_args=["--probe"]).start()
    # What ext_authz allows (/v2/ answered 200 by the policy) is served by the registry itself.
    envoy = start_envoy(network.work, "presence", sidecar.port, network.registry.port)
    front = ClientFront(network.work, envoy.port, network.addresses).start()
    try:
        print(f"sidecar behind Envoy: blobs served {pull_everything(network, front.ports)}")
    finally:
        front.stop()
        envoy.stop()
        sidecar.stop()


def worker_directory(network: Network, name: str) -> Path:
    """A new directory nginx's workers (user nobody) can write: for proxy_cache_path."""
    directory = Path(tempfile.mkdtemp(prefix=f"cache-{name}-", dir=network.shared))
    directory.chmod(0o755)
    return directory


def nginx_backend(network: Network, kind: str) -> tuple[Nginx, Process]:
    """examples/registry.k8s.io/{nginx,openresty}.conf rendered on loopback with `redirector probe`."""
    state = network.shared / f"{kind}.state"
    probe = start_probe(network.work, network.snapshot, state)
    prefix = make_prefix(network.work)
    port = free_port()
    # The buckets here are loopback addresses, which need no resolver: any address will do.
    values = {"SNAPSHOT": network.snapshot, "HEALTH_STATE": state, "PORT": port, "CACHE": worker_directory(network, kind),
              "RESOLVER": "127.0.0.53"}
    if kind == "module":
        values["MODULE_DIR"] = paths.MODULE_DIR
    else:
        values.update({"LUA_DIR": paths.LUA_DIR, "LIBRARY": paths.LIBRARY})
    template = EXAMPLE / ("nginx.conf" if kind == "module" else "openresty.conf")
    server = Nginx(prefix, render(template, prefix / "nginx.conf", values), port=port).start()
    return server, probe


# One presence check as $redirector_checks (and the Lua decision's checks) lists it.
LOGGED_CHECK = re.compile(r"(http://127\.0\.0\.1:\d+/containers/images/sha256:[0-9a-f]{64})"
                          r"\((present|absent-\d{3}|unknown-\d{3}),(cached|\d+ms)\)")


def logged_checks(entries: list[dict]) -> list[tuple[str, str, str]]:
    """(url, result, cached or latency) of every check the access log lists; a malformed list fails."""
    checks = []
    for entry in entries:
        for token in entry.get("checks", "").split():
            match = LOGGED_CHECK.fullmatch(token)
            assert match, (token, entry)
            checks.append(match.groups())
    return checks


@pytest.mark.parametrize("kind", ["module", "lua"])
def test_nginx_pulls_blobs_from_the_bucket_that_has_them(network, kind):
    """The pulls as above, and the access log lists each request's checks: which URL, what it
    found, and whether proxy_cache answered or how long the HEAD took (skopeo inspect and copy
    ask for the config blob twice, so its second check is a cache hit)."""
    server, probe = nginx_backend(network, kind)
    front = ClientFront(network.work, server.port, network.addresses).start()
    try:
        print(f"nginx {kind}: blobs served {pull_everything(network, front.ports)}")
        assert not server.problems(), server.problems()
        checks = logged_checks(server.access_entries())
        timed = [c for c in checks if c[2] != "cached"]
        assert timed and any(c[2] == "cached" for c in checks), checks
        assert {c[1] for c in checks} >= {"present", "absent-404"}, checks
        # Each object found was asked of its bucket once: every later check of it was a cache
        # hit (present answers are kept an hour; absent ones, a minute, may expire meanwhile).
        found = [c[0] for c in timed if c[1] == "present"]
        assert found and len(set(found)) == len(found), timed
    finally:
        front.stop()
        server.stop()
        probe.stop()


def test_nginx_refuses_a_verifying_snapshot_without_a_check_location(network, tmp_path):
    prefix = make_prefix(tmp_path)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
load_module {paths.MODULE_DIR}/ngx_http_redirector_module.so;
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{}}
http {{
    redirector_snapshot {network.snapshot};
    server {{ listen 127.0.0.1:{free_port()}; redirector on; }}
}}
""")
    tested = Nginx(prefix, conf).test_config()
    assert tested.returncode != 0
    assert 'route "blob-bucket"' in tested.stderr and "redirector_presence_check" in tested.stderr, tested.stderr


def test_nginx_variables_hand_out_no_unchecked_redirect(network, tmp_path):
    """Evaluated before the access handler checked (here: without `redirector on`), the variables
    of a verifying redirect say pass and name no target."""
    prefix = make_prefix(tmp_path)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
load_module {paths.MODULE_DIR}/ngx_http_redirector_module.so;
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{}}
http {{
    redirector_snapshot {network.snapshot};
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "[$redirector_action] [$redirector_target] [$redirector_member] [$redirector_route]"; }}
    }}
}}
""")
    server = Nginx(prefix, conf, port=port).start()
    try:
        digest = sorted(network.contents["eu"])[0]
        answer = request(port, "GET", f"/v2/pause/blobs/{digest}", client=network.addresses["eu"])
        assert answer.body.decode() == "[pass] [] [] [blob-bucket]", answer.body
        manifest = request(port, "GET", "/v2/pause/manifests/3.9", client=network.addresses["eu"])
        assert manifest.body.decode().startswith(f"[redirect] [{registry_url(network.registry)}/v2/"), manifest.body
    finally:
        server.stop()


def test_lua_refuses_a_verifying_snapshot_without_a_check_location(network):
    script = f"""
package.path = "{paths.LUA_DIR}/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr, err = redirector.new("{network.snapshot}", {{ library = "{paths.LIBRARY}" }})
assert(rdr == nil, "a verifying table was opened without presence_check")
print(err)
"""
    proc = run(["luajit", "-e", script], timeout=30)
    assert 'route "blob-bucket"' in proc.stdout and "presence_check" in proc.stdout, proc.stdout


def test_lua_decide_verified_with_a_check_of_ones_own(network):
    """decide_verified outside nginx, with a check function: the first bucket's answer (404)
    sends the decision down the chain, the next one's (200, from a cache) verifies it, and
    `checks` lists both, timed and cached."""
    digest = sorted(network.contents["eu"])[0]
    script = f"""
package.path = "{paths.LUA_DIR}/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr = assert(redirector.new("{network.snapshot}", {{ library = "{paths.LIBRARY}", presence_check = "/unused" }}))
local asked = {{}}
local d = assert(rdr:decide_verified("{network.addresses['eu']}", "GET", "registry.test", "/v2/pause/blobs/{digest}", {{}},
    function(url)
        asked[#asked + 1] = url
        if #asked == 1 then return 404 end
        return 200, true
    end))
print(d.action, d.verified, d.location)
print(table.concat(asked, " "))
print(d.checks)
"""
    decision, asked, checks = run(["luajit", "-e", script], timeout=30).stdout.splitlines()
    action, verified, location = decision.split("\t")
    first, second = asked.split()
    assert first == f"{network.buckets['eu'].url}/containers/images/{digest}", asked
    assert (action, verified, location) == ("redirect", "true", second), (action, verified, location)
    assert re.fullmatch(rf"{re.escape(first)}\(absent-404,\d+ms\) {re.escape(second)}\(present,cached\)", checks), checks


# --------------------------------------------------------------------------- a bucket that stops

def test_a_bucket_stopped_mid_pull_does_not_fail_the_pull(network, tmp_path):
    """An image of ten layers, all in eu-west-1's bucket (here serving slowly, limit_rate) and in
    the bucket of the other regions, pulled by an eu client. skopeo fetches six layers at a time;
    once the bucket has served the first, it shuts down (its port closes, the transfers under way
    finish). The layers asked for after that go to the nearest region's bucket (the prober takes
    eu-west-1's down; skopeo's retries, `--retry-times`, cover the requests redirected to it
    inside that window, whose presence was cached), and the pull ends with every digest. (skopeo 1.9 does not resume a blob whose transfer is cut, so a bucket killed in the
    middle of a transfer fails a skopeo pull whatever the redirector does; docs/presence.md.)"""
    registry = network.registry
    layout = tmp_path / "layout"
    build_image(layout, "big", "1.0", random.Random(11), layers=10)
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1.0", f"docker://127.0.0.1:{registry.port}/{PREFIX}/big:1.0")
    image = pushed_image(registry, "big", "1.0")
    layers = set(image.blobs[1:])
    root = Path(tempfile.mkdtemp(prefix="eu-slow-", dir=network.shared))
    root.chmod(0o755)
    fill_bucket(root, registry, [image], sorted(layers))
    fill_bucket(network.buckets["other"].root, registry, [image], sorted(layers))
    slow = Mirror("eu-slow", free_port(), root, tmp_path, access_log=True, rate="40k").start()
    snapshot = policy(tmp_path, registry, dict(network.buckets, eu=slow))
    port = free_port()
    sidecar = Sidecar(snapshot, tmp_path / "standalone.log", ["127.0.0.0/8"],
                      extra_args=["--listen", f"standalone=127.0.0.1:{port}", "--probe",
                                  "--health-state", str(tmp_path / "standalone.state")]).start()
    front = ClientFront(tmp_path, port, {"eu": network.addresses["eu"]}).start()
    destination = tmp_path / "pull"

    def served_layers() -> set[str]:
        return {r["uri"].rsplit("/", 1)[1] for r in slow.requests() if r["method"] == "GET"} & layers

    try:
        wait_for_port(port, 10)
        before = marks(network)
        with ThreadPoolExecutor(1) as pool:
            pull = pool.submit(skopeo, "copy", "--src-tls-verify=false", "--retry-times", "5",
                               f"docker://127.0.0.1:{front.ports['eu']}/big:1.0", f"oci:{destination}:1.0",
                               timeout=240)
            wait_until(lambda: served_layers() or pull.done(), 120, "the slow bucket's first layer")
            slow.stop(graceful=True)
            from_bucket = served_layers()
            pull.result()
        index = json.loads((destination / "index.json").read_text())
        assert index["manifests"][0]["digest"] == image.manifest
        for digest in image.blobs:
            data = (destination / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        served = served_gets(network, before)
        assert from_bucket and from_bucket != layers, f"the bucket served {len(from_bucket)} of {len(layers)} layers"
        assert layers - from_bucket <= set(served["other"]), (from_bucket, served)
        assert not set(served["registry"]) & layers, served
        print(f"the bucket served {len(from_bucket)} of {len(layers)} layers, the next region's "
              f"{len(set(served['other']) & layers)}")
    finally:
        front.stop()
        sidecar.stop()
        slow.stop()


# --------------------------------------------------------------------------- under load

def fresh_blob(network: Network, bucket: str) -> str:
    """A new blob only `bucket` holds (so no cache has an answer for it yet)."""
    data = random.randbytes(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = network.buckets[bucket].root / "containers" / "images" / digest
    path.write_bytes(data)
    path.chmod(0o644)
    return digest


def hundred_at_once(port: int, client: str, digest: str) -> list[str]:
    """100 concurrent GETs of one blob from `client`: their Location headers."""
    barrier = threading.Barrier(100)

    def one(_):
        barrier.wait(10)
        answer = request(port, "GET", f"/v2/pause/blobs/{digest}", client=client, source="127.0.0.2", timeout=20)
        return answer.header("Location") or f"status {answer.status}"

    with ThreadPoolExecutor(100) as pool:
        return list(pool.map(one, range(100)))


@pytest.mark.parametrize("kind", ["standalone", "module"])
def test_a_hundred_requests_for_an_uncached_blob_make_one_head(network, kind):
    if kind == "standalone":
        port = free_port()
        backend = Sidecar(network.snapshot, network.work / "load.log", ["127.0.0.0/8"],
                          extra_args=["--listen", f"standalone=127.0.0.1:{port}"]).start()
        wait_for_port(port, 10)
        probe = None
    else:
        backend, probe = nginx_backend(network, "module")
        port = backend.port
    try:
        digest = fresh_blob(network, "eu")
        heads_before = sum(1 for r in network.buckets["eu"].requests() if r["method"] == "HEAD")
        locations = hundred_at_once(port, network.addresses["eu"], digest)
        assert set(locations) == {f"{network.buckets['eu'].url}/containers/images/{digest}"}, set(locations)
        # Health probes (HEAD /) go on meanwhile; the checks are the HEADs of objects.
        heads = [r for r in network.buckets["eu"].requests() if r["method"] == "HEAD"][heads_before:]
        checks = [r["uri"] for r in heads if r["uri"].startswith("/containers/images/")]
        assert checks == [f"/containers/images/{digest}"], heads
    finally:
        backend.stop()
        if probe:
            probe.stop()


# --------------------------------------------------------------------------- bad mirrors

class BadMirror:
    """A TCP server that answers every connection in one bad way: `slow` (says nothing for 5 s),
    `reset` (closes at once with a RST), `garbage` (bytes that are not HTTP) or `redirect` (a
    302 to another host for the HEAD)."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        self.socket.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection: socket.socket):
        with connection:
            if self.behaviour == "slow":
                self.stopped.wait(5)
            elif self.behaviour == "reset":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            elif self.behaviour == "garbage":
                connection.recv(4096)
                connection.sendall(b"\x00\x17garbage that is not HTTP\r\n\r\n")
            elif self.behaviour == "redirect":
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\n\r\n")

    def stop(self):
        self.stopped.set()
        self.socket.close()


def pool_policy(work: Path, presence: str, members: str, upstream: str) -> Path:
    """A snapshot of one verifying route: blobs of clients in 10.0.0.0/8 go to the pool `buckets`
    (`members`, YAML flow items), whose checks follow `presence`; the rest of /v2/ goes to
    `upstream`."""
    (work / "clients.csv").write_text("prefix,provider,region\n10.0.0.0/8,,r1\n")
    (work / "redirector.yaml").write_text(f"""version: 1
presence: {{ {presence} }}
pools:
  buckets:
    members: [{members}]
providers:
  - name: cloud
    sources: [{{ format: csv, path: clients.csv }}]
routes:
  - name: blob
    path: /v2/{{repo...}}/blobs/{{digest:digest}}
    redirect: {{ to: {{ pool: buckets }}, rewrite: "/containers/images/{{digest}}", verify: true }}
  - name: upstream
    path: /v2/{{rest...}}
    redirect: {{ to: "{upstream}" }}
trustedProxies: [127.0.0.0/8]
""")
    return compile_snapshot(work / "redirector.yaml", work / "pool.rdb")


@pytest.mark.parametrize("kind", ["standalone", "module", "lua"])
@pytest.mark.parametrize("behaviour", ["slow", "reset", "garbage", "redirect"])
def test_a_bad_bucket_ends_in_a_redirect_to_the_next_within_the_timeout(network, tmp_path, kind, behaviour):
    bad = BadMirror(behaviour)
    good = network.buckets["cdn"]
    snapshot = pool_policy(tmp_path, "timeout: 1s, maxChecks: 2",
                           f'{{ url: "http://127.0.0.1:{bad.port}" }}, {{ url: "{good.url}", priority: 1 }}',
                           registry_url(network.registry))
    if kind == "standalone":
        port = free_port()
        backend = Sidecar(snapshot, tmp_path / "sidecar.log", ["127.0.0.0/8"],
                          extra_args=["--listen", f"standalone=127.0.0.1:{port}"]).start()
        wait_for_port(port, 10)
    else:
        prefix = make_prefix(tmp_path)
        port = free_port()
        conf = (EXAMPLE / ("nginx.conf" if kind == "module" else "openresty.conf")).read_text()
        conf = conf.replace("proxy_connect_timeout 5s", "proxy_connect_timeout 1s")
        conf = conf.replace("proxy_send_timeout 5s", "proxy_send_timeout 1s").replace("proxy_read_timeout 5s", "proxy_read_timeout 1s")
        (prefix / "template.conf").write_text(conf)
        backend = Nginx(prefix, render(prefix / "template.conf", prefix / "nginx.conf",
                                       {"MODULE_DIR": paths.MODULE_DIR, "LUA_DIR": paths.LUA_DIR, "LIBRARY": paths.LIBRARY,
                                        "SNAPSHOT": snapshot, "PORT": port, "CACHE": worker_directory(network, f"bad-{kind}"),
                                        "HEALTH_STATE": tmp_path / "unprobed.state", "RESOLVER": "127.0.0.53"}),
                       port=port).start()
    try:
        digest = sorted(network.contents["cdn"])[0]
        started = time.monotonic()
        answer = request(port, "GET", f"/v2/pause/blobs/{digest}", client="10.1.2.3", source="127.0.0.2", timeout=20)
        elapsed = time.monotonic() - started
        assert answer.status == 302, (answer.status, answer.body)
        assert answer.header("Location") == f"{good.url}/containers/images/{digest}"
        assert elapsed < 1.0 + 1.0, f"{behaviour}: answered after {elapsed:.2f} s (timeout 1 s)"
    finally:
        backend.stop()
        bad.stop()


# --------------------------------------------------------------------------- memory

# docs/presence.md, "Memory": the bound this test holds the standalone server to.
DIGESTS = 1_000_000
CACHE_ENTRIES = 100_000            # the default presence.cacheEntries
RSS_GROWTH_LIMIT_MB = 64           # after the cache is full: flat (measured ~0-10 MB)
RSS_LIMIT_MB = 256                 # the whole process, cache of 100,000 entries full

WRK_DISTINCT_DIGESTS = """
-- Each request a digest never asked for before: a counter after the run's offset (wrk's args).
local offset, count = 0, 0
function init(args) offset = tonumber(args[1]) end
function request()
    count = count + 1
    return wrk.format("GET", string.format("/v2/pause/blobs/sha256:%016x%048x", offset, count),
                      { ["X-Forwarded-For"] = "10.1.2.3" })
end
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/setup.sh installs it)")
def test_a_million_distinct_digests_keep_the_servers_memory_flat(tmp_path):
    """1,000,000 blob requests, each for a digest never seen, through the standalone server: each
    one is checked (a real HEAD, answered 404 by an nginx bucket) and its absence cached, so the
    cache of 100,000 entries is full after a tenth of them and then evicts. The server's RSS once
    the cache is full and after the last digest stay within the bounds of docs/presence.md."""
    (tmp_path / "empty").mkdir()
    bucket = Mirror("empty-bucket", free_port(), tmp_path / "empty", tmp_path).start()
    snapshot = pool_policy(tmp_path, f"timeout: 2s, cacheEntries: {CACHE_ENTRIES}, concurrencyPerMirror: 64",
                           f'{{ url: "{bucket.url}" }}', "https://upstream.registry.test")
    script = tmp_path / "distinct.lua"
    script.write_text(WRK_DISTINCT_DIGESTS)
    port = free_port()
    server = Sidecar(snapshot, tmp_path / "sidecar.log", ["127.0.0.0/8"],
                     extra_args=["--listen", f"standalone=127.0.0.1:{port}", "--log-level", "warning"]).start()
    try:
        pid = server.proc.pid
        started = rss_mb(pid)
        sent, run, full, samples = 0, 0, None, []
        while sent < DIGESTS:
            run += 1
            out = subprocess.run(["wrk", "-t1", "-c32", "-d5s", "--timeout", "5s", "-s", str(script),
                                  f"http://127.0.0.1:{port}/", "--", str(run)],
                                 capture_output=True, text=True, timeout=120).stdout
            done = re.search(r"(\d+) requests in", out)
            assert done, out
            assert "Non-2xx" not in out and "Socket errors" not in out, out
            sent += int(done.group(1))
            samples.append((sent, rss_mb(pid)))
            if full is None and sent >= 2 * CACHE_ENTRIES:
                full = samples[-1][1]
        metrics = server.metrics()
        final = rss_mb(pid)
        print(f"RSS: start {started:.1f} MB, cache full {full:.1f} MB, after {sent:,} digests {final:.1f} MB; samples {samples}")
        assert metrics.get('redirector_presence_cache_evictions_total', 0) >= sent - CACHE_ENTRIES - 1000, metrics
        assert metrics.get('redirector_presence_checks_total{result="absent"}', 0) >= sent, metrics
        assert final - full <= RSS_GROWTH_LIMIT_MB, (full, final, samples)
        assert final <= RSS_LIMIT_MB, (final, samples)
    finally:
        server.stop()
        bucket.stop()

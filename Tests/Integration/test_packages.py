"""The Debian packages (debian/, scripts/package.sh) installed the way a user installs them.

scripts/package.sh builds out/deb/*.deb and runs lintian. A clean Debian 12 root made by
`debootstrap --variant=minbase` from this machine's Debian mirror gets them with `apt-get install
./*.deb`, apt resolving their dependencies from Debian. Inside it (chroot with /proc mounted;
loopback only: the root shares the host's network) nginx loads the module the Debian way and
redirects, the packaged sidecar starts from the packaged configuration, the scheduled update
installs a snapshot and reloads only then, the Lua binding decides under Debian's plain LuaJIT,
and removing the module leaves nginx working. The root has no Swift
toolchain: what runs there is self-contained. The Containerfile ships the same binary.

The pristine root is cached in out/rootfs/ (keyed by suite, variant, mirror, apt sources and
debootstrap version; built aside, then renamed into place), as are the .debs apt downloads; each
run works on a copy. Every command run for the root, with its result, goes to
out/packages-install.log.

Run (as root; builds the packages itself): python3 -m pytest Tests/Integration/test_packages.py
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from testkit import paths
from testkit.http import free_port, request
from testkit.nginx import EXAMPLE_CONFIGS, Nginx, make_prefix, render
from testkit.processes import Process, run

SUITE, VARIANT = "bookworm", "minbase"
CACHE_FORMAT = 1                        # bump when the pristine root's preparation changes
ROOTFS = paths.OUT / "rootfs"
COMPLETE = ".redirector-rootfs-complete"
DEB_DIR = paths.OUT / "deb"
INSTALL_LOG = paths.OUT / "packages-install.log"
PACKAGES = {"libnginx-mod-http-redirector", "redirector", "libredirector-dev", "lua-resty-redirector"}
UNIT = "/lib/systemd/system/redirector.service"
# The scheduled update (debian/redirector.redirector-update.*, dh_installsystemd --name in debian/rules).
UPDATE_SERVICE = "/lib/systemd/system/redirector-update.service"
UPDATE_TIMER = "/lib/systemd/system/redirector-update.timer"
UNITS = [UNIT, UPDATE_SERVICE, UPDATE_TIMER]
MODULE_CONF = "/usr/share/nginx/modules-available/mod-http-redirector.conf"
MODULE_LINK = "/etc/nginx/modules-enabled/50-mod-http-redirector.conf"
REGISTRY_PATH = "/v2/pause/manifests/3.9"
ARTIFACT_PATH = "/releases/v1.30.0/bin/linux/amd64/kubectl"
LOG_LIMIT = 20000                       # characters of one command's output kept in the install log


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh)")
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, mount)")


# --------------------------------------------------------------------------- the install log


class InstallLog:
    """out/packages-install.log: each command, its exit status and time, and its output."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Tests/Integration/test_packages.py, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n")

    def note(self, text: str) -> None:
        with self.path.open("a") as f:
            f.write(f"\n# {text}\n")

    def run(self, cmd, timeout: float = 900, check: bool = True, shown: str | None = None) -> subprocess.CompletedProcess:
        """Runs `cmd` and logs it (as `shown`, when given) with its result."""
        start = time.monotonic()
        proc = run(cmd, timeout=timeout, check=False)
        output = (proc.stdout + proc.stderr).strip()
        if len(output) > LOG_LIMIT:
            output = f"[… {len(output) - LOG_LIMIT} characters]\n" + output[-LOG_LIMIT:]
        with self.path.open("a") as f:
            f.write(f"\n$ {shown or shlex.join(str(c) for c in cmd)}\n# exit {proc.returncode}, {time.monotonic() - start:.1f} s\n")
            if output:
                f.write(output + "\n")
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(str(c) for c in cmd)} exited {proc.returncode} "
                                 f"(log: {self.path})\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
        return proc


# --------------------------------------------------------------------------- roots


def mounts_under(path: Path) -> list[str]:
    top = str(path.resolve())
    targets = [line.split()[1].replace("\\040", " ") for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [t for t in targets if t == top or t.startswith(top + "/")]


def remove_tree(path: Path) -> None:
    """Deletes a root: unmounts what is mounted inside it first (a killed run may leave /proc
    mounted) and never deletes across a mount."""
    for target in sorted(mounts_under(path), key=len, reverse=True):
        if subprocess.run(["umount", target], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True)
    left = mounts_under(path)
    assert not left, f"still mounted in {path}: {left}"
    run(["rm", "-rf", "--one-file-system", path], timeout=300)


class Root:
    """A Debian root used through chroot, with a clean environment (the host's PATH, Swift
    toolchain included, stays outside)."""

    def __init__(self, path: Path, log: InstallLog):
        self.path, self.log = path, log

    def host(self, inner: str) -> Path:
        """The host path of `inner`, a path inside the root."""
        return self.path / inner.lstrip("/")

    def inner(self, host: Path) -> str:
        return "/" + str(host.relative_to(self.path))

    def command(self, *cmd, user: str | None = None, env: dict | None = None) -> list[str]:
        variables = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
                     "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        return (["chroot"] + ([f"--userspec={user}"] if user else []) + [str(self.path), "/usr/bin/env", "-i"]
                + [f"{k}={v}" for k, v in variables.items()] + [str(c) for c in cmd])

    def run(self, *cmd, user: str | None = None, env: dict | None = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
        shown = f"chroot {self.path.name}{f' --userspec={user}' if user else ''} " + shlex.join(str(c) for c in cmd)
        return self.log.run(self.command(*cmd, user=user, env=env), timeout=timeout, check=check, shown=shown)

    def mount_proc(self) -> None:
        # Swift programs read their arguments from /proc/self/cmdline; without /proc every
        # subcommand sees none.
        if not mounts_under(self.host("/proc")):
            self.log.run(["mount", "-t", "proc", "proc", self.host("/proc")])

    def decide(self, snapshot: str, client: str, path: str) -> dict:
        """The packaged CLI's decision for GET `path` from `client`."""
        return json.loads(self.run("redirector", "decide", "--snapshot", snapshot, "--client", client,
                                   "--method", "GET", "--json", "--", path).stdout)


def host_apt_sources() -> tuple[Path, str, str]:
    """This machine's Debian apt sources (deb822 debian.sources, else sources.list): the file, its
    text and the mirror URI it serves bookworm main from."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        text = deb822.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split() \
                    and "main" in fields.get("Components", "").split():
                return deb822, text, fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        text = legacy.read_text()
        m = re.search(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}\s+.*\bmain\b", text, re.M)
        if m:
            return legacy, text, m.group(1)
    pytest.fail(f"no Debian {SUITE} main source in /etc/apt (debian.sources or sources.list)")


def remove_stale(pattern: str) -> None:
    """Removes the roots of runs that died (their PID, the name's last part, is gone)."""
    for stale in ROOTFS.glob(pattern):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(stale)


@pytest.fixture(scope="module")
def install_log() -> InstallLog:
    return InstallLog(INSTALL_LOG)


@pytest.fixture(scope="module")
def pristine_root(install_log) -> Path:
    """debootstrap's minbase bookworm from this machine's mirror, with its apt sources and lists,
    cached in out/rootfs/<suite>-<variant>-<key>/ (complete when it holds COMPLETE)."""
    require_tools("debootstrap", "chroot", "mount")
    sources_file, sources, mirror = host_apt_sources()
    debootstrap = run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"]).stdout
    key = hashlib.sha256(json.dumps([CACHE_FORMAT, SUITE, VARIANT, mirror, sources, debootstrap]).encode()).hexdigest()[:12]
    final = ROOTFS / f"{SUITE}-{VARIANT}-{key}"
    build_log = ROOTFS / f"{final.name}.log"     # how the cached root was made, for the record
    if (final / COMPLETE).exists():
        install_log.note(f"pristine root: cached {final}, made as follows ({build_log.name}):")
        with install_log.path.open("a") as f:
            f.write(build_log.read_text() if build_log.exists() else "# (no log kept)\n")
        return final
    ROOTFS.mkdir(parents=True, exist_ok=True)
    remove_stale(f".build-{SUITE}-{VARIANT}-*")
    if final.exists():
        remove_tree(final)        # incomplete: built by hand or an older layout
    tmp = ROOTFS / f".build-{final.name}-{os.getpid()}"
    start = install_log.path.stat().st_size
    install_log.note(f"pristine root: debootstrap from {mirror} (debootstrap {debootstrap})")
    install_log.run(["debootstrap", f"--variant={VARIANT}", SUITE, tmp, mirror], timeout=1800)
    root = Root(tmp, install_log)
    try:
        # The machine's Debian sources (updates and security included), nothing else.
        (tmp / "etc/apt/sources.list").unlink(missing_ok=True)
        shutil.copyfile(sources_file, root.host(str(sources_file)))
        # No service starts in the root: it shares the host's network (nginx's default site would
        # take port 80), as in Debian's container images.
        policy = root.host("/usr/sbin/policy-rc.d")
        policy.write_text("#!/bin/sh\n# Tests/Integration/test_packages.py: no service starts in this root.\nexit 101\n")
        policy.chmod(0o755)
        root.mount_proc()
        root.run("apt-get", "update")
    finally:
        for target in mounts_under(tmp):
            run(["umount", target])
    build_log.write_bytes(install_log.path.read_bytes()[start:])
    (tmp / COMPLETE).write_text(json.dumps({"suite": SUITE, "variant": VARIANT, "mirror": mirror,
                                            "debootstrap": debootstrap, "built": time.time()}) + "\n")
    try:
        tmp.rename(final)
    except OSError:               # another run put its root there first
        remove_tree(tmp)
    return final


@pytest.fixture(scope="module")
def packages(install_log) -> dict[str, Path]:
    """scripts/package.sh's packages, by name (its output, lintian's included, goes to the log)."""
    require_tools("dpkg-buildpackage", "lintian", "help2man")
    install_log.run(["bash", paths.REPO / "scripts" / "package.sh"], timeout=3600)
    debs = {run(["dpkg-deb", "-f", deb, "Package"]).stdout.strip(): deb for deb in sorted(DEB_DIR.glob("*.deb"))}
    assert set(debs) == PACKAGES, f"{DEB_DIR}: {sorted(debs)}"
    return debs


@pytest.fixture(scope="module")
def root(pristine_root, packages, install_log):
    """A copy of the pristine root with systemd (as on any Debian server; minbase has none) and
    then the packages installed by apt, plus Debian's plain luajit; removed afterwards."""
    remove_stale("run-*")
    work = ROOTFS / f"run-{os.getpid()}"
    if work.exists():
        remove_tree(work)
    install_log.note(f"working root {work}, a copy of {pristine_root.name}")
    install_log.run(["cp", "-a", "--reflink=auto", pristine_root, work])
    root = Root(work, install_log)
    archives = root.host("/var/cache/apt/archives")
    cache = ROOTFS / f"{pristine_root.name}.archives"      # the .debs apt downloaded before
    cache.mkdir(exist_ok=True)
    try:
        resolv = root.host("/etc/resolv.conf")
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
        root.mount_proc()
        for deb in cache.glob("*.deb"):
            if not (archives / deb.name).exists():
                os.link(deb, archives / deb.name)
        root.run("apt-get", "update")
        root.run("apt-get", "install", "-y", "systemd")
        debs = root.host("/tmp/debs")
        debs.mkdir()
        for deb in packages.values():
            shutil.copy(deb, debs / deb.name)
        install_log.note("the packages, as docs/packaging.md installs them (apt install ./*.deb)")
        root.run("apt-get", "install", "-y", *[f"/tmp/debs/{deb.name}" for deb in packages.values()])
        # Debian's plain LuaJIT replaces OpenResty's (libluajit2-5.1-2, which lua-resty-core and so
        # the recommended libnginx-mod-http-lua need): the two cannot be installed together.
        install_log.note("Debian's plain luajit, for the Lua binding outside nginx")
        root.run("apt-get", "install", "-y", "luajit")
        for deb in archives.glob("*.deb"):
            if not (cache / deb.name).exists():
                os.link(deb, cache / deb.name)
        root.run("dpkg-query", "-W", "-f=${Package} ${Version} ${Status}\n")
        yield root
    finally:
        remove_tree(work)


@pytest.fixture(scope="module")
def snapshot(root) -> str:
    """The packaged configuration compiled by the packaged CLI, in the root."""
    path = "/etc/nginx/redirector.rdb"
    root.run("redirector", "compile", "--config", "/etc/redirector/redirector.yaml", "--output", path)
    root.host(path).chmod(0o644)
    return path


def provider_clients() -> dict[str, str]:
    """An address in the first AWS and Google Cloud range of the shipped data, and one of no
    provider (TEST-NET-1)."""
    aws = json.loads((paths.EXAMPLES / "data" / "aws-ip-ranges.json").read_text())
    gcp = json.loads((paths.EXAMPLES / "data" / "gcp-cloud.json").read_text())

    def inside(prefix: str) -> str:
        net = ipaddress.ip_network(prefix)
        return str(net.network_address + (1 if net.num_addresses > 1 else 0))

    return {"aws": inside(next(p["ip_prefix"] for p in aws["prefixes"] if p["service"] == "AMAZON")),
            "gcp": inside(next(p["ipv4Prefix"] for p in gcp["prefixes"] if "ipv4Prefix" in p)),
            "gcp6": inside(next(p["ipv6Prefix"] for p in gcp["prefixes"] if "ipv6Prefix" in p)),
            "none": "192.0.2.1"}


# --------------------------------------------------------------------------- systemd units


def service_settings(unit: str) -> list[tuple[str, str]]:
    """The [Service] section's settings in order, continuation lines joined as systemd joins them."""
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0].replace("\\\n", " ")
    return re.findall(r"^(\w+)=(.*)$", service, re.M)


def unit_environment(settings: list[tuple[str, str]], where=Path) -> dict[str, str]:
    """The variables of the unit's EnvironmentFile (`where` maps its path to the file to read)."""
    [env_file] = [v for k, v in settings if k == "EnvironmentFile"]
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", where(env_file).read_text(), re.M))


def command_line(value: str, env: dict[str, str]) -> list[str]:
    """An Exec*= value as systemd runs it: its prefix ("+": full privileges) dropped, then split into
    words, ${VAR} replaced within a word, a $VAR word split into zero or more words, $$ a literal $
    (unset variables are empty)."""
    words = []
    for word in shlex.split(value.lstrip("+-@:!")):
        if m := re.fullmatch(r"\$(\w+)", word):
            words += env.get(m.group(1), "").split()
        else:
            words.append(re.sub(r"\$\$|\$\{(\w+)\}", lambda m: env.get(m.group(1), "") if m.group(1) else "$", word))
    return words


def exposure(security: str, unit: str) -> float:
    """The overall exposure `systemd-analyze security` gives `unit` (0 = locked down, 10 = none)."""
    return float(re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", security).group(1))


def debian_units() -> dict[str, Path]:
    """debian/'s units by the name dh_installsystemd installs them as: debian/redirector.service
    as is, debian/redirector.NAME.{service,timer} as NAME.{service,timer}."""
    debian = paths.REPO / "debian"
    extra = sorted(debian.glob("redirector.*.service")) + sorted(debian.glob("redirector.*.timer"))
    return {"redirector.service": debian / "redirector.service", **{f.name.split(".", 1)[1]: f for f in extra}}


def test_systemd_units_verify_before_packaging(tmp_path):
    """No package is built here: debian/'s units, under their installed names, pass `systemd-analyze
    verify` without a message, /usr/bin/redirector replaced by a stub (verify checks that commands
    exist; the clean root below verifies the installed files unchanged), and a misspelt setting is
    shown to fail. The timer starts the update service; the update runs as the sidecar's dynamic
    user, on its state directory and environment file, and scores like it in `systemd-analyze
    security`; its privileged post command runs REDIRECTOR_UPDATE_RELOAD exactly when the update's
    --reload-command (run only when a new snapshot was installed) has run."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (systemd)")
    units = debian_units()
    assert sorted(units) == sorted(Path(u).name for u in UNITS)
    stub = tmp_path / "redirector"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name, source in units.items():
        (tmp_path / name).write_text(source.read_text().replace("/usr/bin/redirector", str(stub)))

    def problems(*names: str) -> str:
        """What `systemd-analyze verify` says of the units (nothing, when they are right)."""
        proc = run(["systemd-analyze", "verify", *[tmp_path / n for n in names]], check=False)
        return f"exit {proc.returncode}: {proc.stdout}{proc.stderr}" if proc.returncode or (proc.stdout + proc.stderr).strip() else ""

    assert not problems(*units), problems(*units)
    broken = tmp_path / "broken" / "redirector-update.service"
    broken.parent.mkdir()
    broken.write_text((tmp_path / "redirector-update.service").read_text().replace("\nProtectSystem=", "\nProtectSytem="))
    assert "Unknown key 'ProtectSytem'" in problems("broken/redirector-update.service")

    timer = units["redirector-update.timer"].read_text()
    assert "\nUnit=" not in timer and "\nPersistent=yes\n" in timer   # it starts redirector-update.service
    security = run(["systemd-analyze", "security", "--offline=yes", tmp_path / "redirector-update.service"]).stdout
    assert exposure(security, "redirector-update.service") <= 2.0, security

    sidecar_settings = service_settings(units["redirector.service"].read_text())
    settings = service_settings(units["redirector-update.service"].read_text())
    sidecar, update = dict(sidecar_settings), dict(settings)
    # The sidecar's sandbox (from DynamicUser= on), setting for setting, its runtime directory aside.
    sandbox = sidecar_settings[sidecar_settings.index(("DynamicUser", "yes")):]
    assert [s for s in sandbox if s not in settings and not s[0].startswith("RuntimeDirectory")] == []
    assert update["Type"] == "oneshot" and update["DynamicUser"] == "yes"
    # redirector.service's dynamic user is named after the unit; sharing it keeps /var/lib/redirector one user's.
    assert "User" not in sidecar and update["User"] == "redirector"
    for key in ("EnvironmentFile", "StateDirectory"):
        assert update[key] == sidecar[key], key
    env = unit_environment(settings, lambda path: units["redirector.service"].parent / Path(path).name)
    [start] = [command_line(v, env) for k, v in settings if k == "ExecStart"]
    [post] = [v for k, v in settings if k == "ExecStartPost"]
    assert start[:2] == ["/usr/bin/redirector", "update"]
    option = {start[i]: start[i + 1] for i in range(2, len(start) - 1, 2)}
    assert option["--config"] == env["REDIRECTOR_CONFIG"] and option["--output"] == env["REDIRECTOR_SNAPSHOT"]
    assert option["--cache"] == f"/var/cache/{update['CacheDirectory']}"

    # The reload gate, run here with the unit's runtime directory at a scratch place.
    runtime, reloaded = tmp_path / "run", tmp_path / "reloaded"
    runtime.mkdir()
    local = {"PATH": "/usr/bin:/bin", **env, "REDIRECTOR_UPDATE_RELOAD": f"touch {reloaded}"}
    assert post.startswith("+"), "the reload needs full privileges"
    gate = [w.replace(f"/run/{update['RuntimeDirectory']}/", f"{runtime}/") for w in command_line(post, local)]
    mark = option["--reload-command"].replace(f"/run/{update['RuntimeDirectory']}/", f"{runtime}/")
    assert str(runtime) in mark and str(runtime) in " ".join(gate)
    run(gate, env=local)
    assert not reloaded.exists(), "reloaded although no new snapshot was installed"
    run(["/bin/sh", "-c", mark])
    run(gate, env=local)
    assert reloaded.exists(), "not reloaded after a new snapshot was installed"
    run(gate, env={k: v for k, v in local.items() if k != "REDIRECTOR_UPDATE_RELOAD"})   # unset: nothing to run


# --------------------------------------------------------------------------- lintian


def documented_lintian() -> set[tuple[str, str, str]]:
    """docs/packaging.md's table of the lintian warnings and overrides left: (severity, package,
    tag with its context), e.g. ("O", "redirector", "embedded-library zlib [usr/bin/redirector]")."""
    text = (paths.REPO / "docs" / "packaging.md").read_text()
    return set(re.findall(r"^\| ([EWO]) \| `([a-z0-9.+-]+)` \| `([^`]+)` \|", text, re.M))


def test_lintian_reports_no_errors_and_what_docs_list(packages):
    """lintian (run by scripts/package.sh with --show-overrides) finds no error; the warnings and
    overrides left are exactly those docs/packaging.md explains."""
    report = (DEB_DIR / "lintian.txt").read_text()
    found = set(re.findall(r"^([EWO]): ([a-z0-9.+-]+)(?: source)?: (.+)$", report, re.M))
    assert not [f for f in found if f[0] == "E"], report
    assert found == documented_lintian(), f"lintian:\n{report}\ndocumented: {sorted(documented_lintian())}"


# --------------------------------------------------------------------------- in the clean root


def test_systemd_units_verify_and_are_hardened(root):
    """The packaged units, as installed: the sidecar's and the scheduled update's pass `systemd-analyze
    verify` and score "OK" or better; the sidecar is enabled, the update timer is not."""
    assert set(UNITS) <= set(root.run("dpkg", "-L", "redirector").stdout.split())
    verify = root.run("systemd-analyze", "verify", *UNITS, check=False)
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), verify.stdout + verify.stderr
    for unit in (UNIT, UPDATE_SERVICE):
        security = root.run("systemd-analyze", "security", "--offline=yes", unit)
        assert exposure(security.stdout, Path(unit).name) <= 2.0, security.stdout
    unit = root.host(UNIT).read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert f"\n{setting}\n" in unit, setting
    # dh_installsystemd's postinst enabled it (no systemd runs in the root, so nothing started)
    assert root.host("/etc/systemd/system/multi-user.target.wants/redirector.service").is_symlink()
    # Fetching from the network is the operator's choice (debian/rules: --no-enable).
    assert not os.path.lexists(root.host("/etc/systemd/system/timers.target.wants/redirector-update.timer"))


def test_module_is_enabled_the_debian_way(root):
    link = root.host(MODULE_LINK)
    assert link.is_symlink() and os.readlink(link) == MODULE_CONF
    assert root.host(MODULE_CONF).read_text() == "load_module modules/ngx_http_redirector_module.so;\n"
    # The NDK (set_redirector_target) comes from its own package's snippet, enabled and loaded first.
    enabled = sorted(p.name for p in root.host("/etc/nginx/modules-enabled").glob("*.conf"))
    assert enabled.index("10-mod-http-ndk.conf") < enabled.index("50-mod-http-redirector.conf"), enabled
    root.run("nginx", "-t")      # Debian's nginx.conf: include /etc/nginx/modules-enabled/*.conf
    assert "load_module modules/ngx_http_redirector_module.so;" in root.run("nginx", "-T").stdout


class RootNginx(Nginx):
    """The root's nginx in the foreground, in a prefix under the root's /tmp (files are read from
    the host side)."""

    def __init__(self, root: Root, prefix: Path, port: int):
        super().__init__(prefix, prefix / "nginx.conf", port=port)
        self.root, self.inner_prefix = root, root.inner(prefix)
        self.cmd = self.command("-g", "daemon off;")

    def command(self, *args) -> list[str]:
        return self.root.command("nginx", "-p", f"{self.inner_prefix}/", "-c", f"{self.inner_prefix}/nginx.conf", *args)


def test_nginx_in_the_root_redirects_a_provider_client(root, snapshot, nginx):
    """examples/nginx/nginx.conf with the packages' modules-enabled snippets instead of its
    load_module lines: a client in a provider's range behind the trusted proxy is redirected as the
    packaged CLI decides, a client of no provider reaches the origin."""
    prefix = make_prefix(root.host("/tmp"))
    # Relative module paths resolve against the prefix: link modules/ as Debian's /usr/share/nginx does.
    (prefix / "modules").symlink_to("/usr/lib/nginx/modules")
    port, origin = free_port(), free_port()
    conf = render(EXAMPLE_CONFIGS["module"], prefix / "nginx.conf",
                  {"MODULE_DIR": "/usr/lib/nginx/modules", "SNAPSHOT": snapshot, "PORT": port, "ORIGIN_PORT": origin})
    lines = conf.read_text().splitlines()
    loads = [i for i, line in enumerate(lines) if line.startswith("load_module ")]
    assert [lines[i] for i in loads] == ["load_module /usr/lib/nginx/modules/ndk_http_module.so;",
                                         "load_module /usr/lib/nginx/modules/ngx_http_redirector_module.so;"]
    lines[loads[0]:loads[-1] + 1] = ["include /etc/nginx/modules-enabled/*.conf;"]
    conf.write_text("\n".join(lines) + "\n")
    server = RootNginx(root, prefix, port)
    nginx.servers.append(server)          # the fixture stops it and checks its error log
    server.start()

    clients = provider_clients()
    for name in ("aws", "gcp", "gcp6"):
        want = root.decide(snapshot, clients[name], REGISTRY_PATH)
        assert want["action"] == "redirect" and want["status"] == 302, (name, want)
        resp = request(port, "GET", REGISTRY_PATH, client=clients[name])   # from 127.0.0.1, trusted
        assert (resp.status, resp.location) == (302, want["location"]), name
    assert root.decide(snapshot, clients["none"], REGISTRY_PATH)["action"] == "pass"
    resp = request(port, "GET", REGISTRY_PATH, client=clients["none"])
    assert resp.status == 200 and resp.body == f"origin GET {REGISTRY_PATH}\n".encode()


def unit_service_commands(root: Root) -> tuple[dict, list[str], list[str]]:
    """The sidecar unit's environment (its EnvironmentFile) and its ExecStartPre and ExecStart
    command lines, as systemd runs them."""
    settings = service_settings(root.host(UNIT).read_text())
    env = unit_environment(settings, root.host)
    [pre] = [command_line(v, env) for k, v in settings if k == "ExecStartPre"]
    [start] = [command_line(v, env) for k, v in settings if k == "ExecStart"]
    return env, pre, start


def test_packaged_sidecar_starts_from_the_packaged_config(root, tmp_path):
    """The unit's own commands, from its environment file, as an unprivileged user owning
    /var/lib/redirector (what systemd's DynamicUser and StateDirectory give it): the snapshot is
    compiled from /etc/redirector, and the sidecar answers a check as the packaged CLI decides."""
    env, pre, start = unit_service_commands(root)
    port = free_port()
    env["REDIRECTOR_LISTEN"] = f"127.0.0.1:{port}"      # the packaged 127.0.0.1:9000 may be taken here
    state = root.host(env["REDIRECTOR_SNAPSHOT"]).parent
    state.mkdir(parents=True, exist_ok=True)
    os.chown(state, 65534, 65534)                        # nobody:nogroup in Debian's base-passwd
    root.run(*pre, user="nobody:nogroup", env=env)
    sidecar = Process("sidecar", root.command(*start, user="nobody:nogroup", env=env), tmp_path / "sidecar.log")
    try:
        sidecar.start_listening(port)
        client = provider_clients()["aws"]
        want = root.decide(env["REDIRECTOR_SNAPSHOT"], client, REGISTRY_PATH)
        assert want["action"] == "redirect"
        resp = request(port, "GET", "/ext_authz" + REGISTRY_PATH, client=client)  # Envoy's check, from a trusted peer
        assert (resp.status, resp.location) == (want["status"], want["location"]), sidecar.log_text()[-2000:]
        assert request(port, "GET", "/readyz").status == 200
    finally:
        code = sidecar.stop()
    assert code == 0, f"sidecar exited {code} on SIGTERM:\n{sidecar.log_text()[-2000:]}"


def test_packaged_update_installs_and_reloads(root):
    """The update unit's own ExecStart and ExecStartPost lines with its environment file, as
    systemd runs them: ExecStart as an unprivileged user owning the unit's state, cache and runtime
    directories (what DynamicUser and the *Directory= settings give it), ExecStartPost as root. The
    first run installs the packaged configuration's snapshot and runs REDIRECTOR_UPDATE_RELOAD; the
    next one, with a fresh runtime directory as at every start, finds nothing new and reloads nothing."""
    settings = service_settings(root.host(UPDATE_SERVICE).read_text())
    env = unit_environment(settings, root.host)
    reloaded = "/tmp/update-reloaded"
    env["REDIRECTOR_UPDATE_RELOAD"] = f"touch {reloaded}"
    [start] = [command_line(v, env) for k, v in settings if k == "ExecStart"]
    [post] = [command_line(v, env) for k, v in settings if k == "ExecStartPost"]
    directories = {k: v for k, v in settings if k.endswith("Directory")}
    runtime = root.host(f"/run/{directories['RuntimeDirectory']}")
    snapshot = root.host(env["REDIRECTOR_SNAPSHOT"])
    for d in (snapshot.parent, root.host(f"/var/cache/{directories['CacheDirectory']}")):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, 65534, 65534)                     # nobody:nogroup
    snapshot.unlink(missing_ok=True)                  # the sidecar's test may have compiled one
    identities = []
    for first in (True, False):
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir()
        os.chown(runtime, 65534, 65534)
        root.host(reloaded).unlink(missing_ok=True)
        root.run(*start, user="nobody:nogroup", env=env)
        root.run(*post, env=env)
        assert root.host(reloaded).exists() == first, "reloaded" if not first else "not reloaded"
        identities.append((snapshot.stat().st_ino, snapshot.stat().st_mtime_ns))
    assert identities[0] == identities[1], "an update that found nothing new replaced the snapshot"
    client = provider_clients()["aws"]
    assert root.decide(env["REDIRECTOR_SNAPSHOT"], client, REGISTRY_PATH)["action"] == "redirect"
    shutil.rmtree(runtime)


def test_binaries_are_self_contained(root):
    """No Swift toolchain or runtime in the root, and nothing the binaries need is missing."""
    assert not root.host("/opt/swift").exists()
    found = root.run("find", "/", "-xdev", "(", "-name", "libswift*", "-o", "-name", "libFoundation*", ")", "-print").stdout
    assert not found.strip(), found
    for binary in ("/usr/bin/redirector", "/usr/lib/nginx/modules/libredirector.so",
                   "/usr/lib/nginx/modules/ngx_http_redirector_module.so"):
        ldd = root.run("ldd", binary).stdout
        assert "swift" not in ldd.lower() and "not found" not in ldd, f"{binary}:\n{ldd}"


LUA_DECIDE = r"""
-- No package.path and no library option: the packaged module and libredirector.so are found
-- where the packages put them (/usr/share/lua/5.1, /usr/lib/nginx/modules).
local redirector = require "resty.redirector"
io.write(package.searchpath("resty.redirector", package.path), "\t", jit.version, "\n")
local rdr = assert(redirector.new(arg[1]))
for line in io.lines(arg[2]) do
  local client, path = line:match("^(%S+) (%S+)$")
  local d = assert(rdr:decide(client, "GET", "", path))
  io.write(table.concat({d.action, d.status, d.location or "", d.provider or "", d.region or "",
                         d.prefix or "", d.route or ""}, "\t"), "\n")
end
"""


def test_lua_binding_under_debians_plain_luajit(root, snapshot):
    """lua-resty-redirector under Debian's luajit (2.1.0-beta3, not OpenResty's) decides as the
    packaged CLI does."""
    assert root.run("dpkg-query", "-S", "/usr/bin/luajit").stdout.startswith("luajit:")
    assert root.run("dpkg-query", "-W", "-f=${Status}", "libluajit-5.1-2").stdout == "install ok installed"
    # OpenResty's LuaJIT went when luajit came (they conflict); test_lua_binding.py runs the binding there.
    assert not root.run("dpkg-query", "-W", "-f=${Status}", "libluajit2-5.1-2", check=False).stdout.startswith("install ok")
    requests = [(client, path) for client in provider_clients().values() for path in (REGISTRY_PATH, ARTIFACT_PATH, "/")]
    root.host("/tmp/decide.lua").write_text(LUA_DECIDE)
    root.host("/tmp/requests.txt").write_text("".join(f"{c} {p}\n" for c, p in requests))
    first, *lines = root.run("luajit", "/tmp/decide.lua", snapshot, "/tmp/requests.txt").stdout.splitlines()
    assert first.split("\t") == ["/usr/share/lua/5.1/resty/redirector.lua", "LuaJIT 2.1.0-beta3"]
    assert len(lines) == len(requests)
    redirects = 0
    for (client, path), line in zip(requests, lines):
        want = root.decide(snapshot, client, path)
        expected = [want["action"], str(want["status"]), want["location"] or "", want["provider"], want["region"],
                    want["prefix"] or "", want["route"]]
        assert line.split("\t") == expected, (client, path)
        redirects += want["action"] == "redirect"
    assert redirects >= 6, "too few redirects compared"


def test_removing_the_module_leaves_nginx_working(root):
    """Runs last: the module goes (the Lua binding and the headers with it: they need its
    library); dh_nginx's prerm takes the snippet out of modules-enabled and nginx -t passes."""
    root.run("apt-get", "remove", "-y", "libnginx-mod-http-redirector")
    status = {name: root.run("dpkg-query", "-W", "-f=${Status}", name, check=False).stdout for name in PACKAGES}
    assert status["redirector"] == "install ok installed"
    assert all(not s.startswith("install ok") for n, s in status.items() if n != "redirector"), status
    assert not root.host("/usr/lib/nginx/modules/ngx_http_redirector_module.so").exists()
    assert not os.path.lexists(root.host(MODULE_LINK))
    root.run("nginx", "-t")


# --------------------------------------------------------------------------- the container image


def test_containerfile_ships_what_the_root_tested():
    """The Containerfile builds the binary with the script debian/rules uses (the binary the root
    ran without a toolchain), sets only variables `redirector serve` reads, points them at the
    snapshot it compiles, runs as non-root and has no shell form. No engine builds it here."""
    text = (paths.REPO / "Containerfile").read_text()
    instructions = [re.sub(r"\\\n", " ", m) for m in re.findall(r"^[A-Z]+ (?:.*\\\n)*.*$", text, re.M)]
    declared = {m for line in instructions if line.startswith("ARG ") for m in [line.split()[1].split("=")[0]]}
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used <= declared, f"undeclared build args: {used - declared}"
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS build"), stages

    build_stage, final_stage = re.split(r"^FROM .*$", text, flags=re.M)[1:]
    assert "bash scripts/build-static-cli.sh out/bin/redirector" in build_stage
    assert "scripts/build-static-cli.sh" in (paths.REPO / "debian" / "rules").read_text()
    copies = re.findall(r"^COPY (?!--from)(\S+) ", build_stage, re.M)
    assert copies and all((paths.REPO / c).exists() for c in copies), copies
    ignored = (paths.REPO / ".dockerignore").read_text().split()
    assert {".build", ".build-*", "out"} <= set(ignored)

    assert re.search(r"^COPY --from=build /image/ /$", final_stage, re.M)
    assert "cp out/bin/redirector /image/usr/bin/redirector" in build_stage
    assert re.search(r"^USER (\d+):(\d+)$", final_stage, re.M).group(1) != "0"
    assert 'ENTRYPOINT ["/usr/bin/redirector", "serve"]' in final_stage
    env = dict(re.findall(r"(REDIRECTOR_[A-Z_]+)=(\S+)", final_stage))
    assert env["REDIRECTOR_SNAPSHOT"] == "/var/lib/redirector/snapshot.rdb"
    assert "/image/var/lib/redirector/snapshot.rdb" in build_stage
    if not paths.CLI.exists():
        pytest.skip(f"{paths.CLI} not built")
    serve_help = " ".join(run([paths.CLI, "serve", "--help"]).stdout.split())
    assert all(f"Env: {name}" in serve_help for name in env), sorted(env)

#!/usr/bin/env bash
# Installs everything Redirector's build, tests and benchmarks need on a Debian machine.
# Idempotent: packages already present are skipped, so running it twice is cheap.
set -euo pipefail

debian_packages=(
  zlib1g-dev                     # gzip importer (CZlib)
  nginx nginx-dev                # NGINX dynamic module: packaged nginx and its build tree
  libnginx-mod-http-ndk-dev      # NDK headers for the set_redirector_target directive
  libnginx-mod-http-ndk
  libnginx-mod-http-lua lua-resty-core luajit2  # Lua binding in nginx; luajit2 (OpenResty's) for FFI tests outside it
  caddy                          # forward_auth integration tests
  python3-pyasn                  # real BGP prefix -> ASN tables (ipasn_20140513.dat.gz, ipasn6_20151101.dat.gz)
  wrk hyperfine                  # load and timing for the benchmarks
  curl
  build-essential binutils       # gcc/make for the nginx module build; readelf checks its rpath
  procps util-linux              # pgrep (benchmark workers), taskset (pins wrk to another CPU)
  valgrind                       # memcheck of the C ABI over the fuzz corpus (test_robustness.py, soak.sh)
  debhelper dpkg-dev help2man lintian  # Debian packages (scripts/package.sh; the rest of debian/control's Build-Depends is above)
  debootstrap                    # the clean Debian 12 root the packages are installed in (test_packages.py)
  libloc-database location       # IPFire's location.db and its libloc CLI: the location-db importer and its oracle (test_location_db.py)
  prometheus                     # Prometheus 2.42 + promtool: scrapes a real sidecar, checks and unit-tests the alert rules (test_prometheus.py)
  docker-registry skopeo         # CNCF distribution registry 2.8 and the OCI client: presence-checked pulls (test_presence.py)
)
# Python packages: pinned in Tests/requirements.txt.
python_requirements="$(dirname "$0")/../Tests/requirements.txt"

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged services must not hold ports or run in the background of tests.
  for svc in nginx caddy prometheus docker-registry; do
    (service "$svc" stop || true) >/dev/null 2>&1
  done
fi
# Packaged services started by the installer must not hold ports during tests; ours start their own.
# Stopped by pid file and executable, so a stale pid file never hits another process.
start-stop-daemon --stop --quiet --oknodo --signal QUIT --pidfile /run/nginx.pid --exec /usr/sbin/nginx
# Debian's prometheus service (sysvinit pid file) would scrape :9090 in the background.
start-stop-daemon --stop --quiet --oknodo --pidfile /run/prometheus/prometheus.pid --exec /usr/bin/prometheus
# Debian's docker-registry service would hold :5000.
start-stop-daemon --stop --quiet --oknodo --pidfile /run/docker-registry.pid --exec /usr/bin/docker-registry

# pip only when a pinned version is not the installed one.
python3 - "$python_requirements" 2>/dev/null <<'PY' || python3 -m pip install -q --disable-pip-version-check -r "$python_requirements"
import importlib.metadata, sys
for line in open(sys.argv[1]):
    requirement = line.split("#", 1)[0].strip()
    if requirement:
        name, version = requirement.split("==")
        assert importlib.metadata.version(name) == version, requirement
PY

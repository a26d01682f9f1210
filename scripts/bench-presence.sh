#!/usr/bin/env bash
# Cost of presence checks (docs/presence.md) in `redirector serve`, in one run:
#   - warm cache: req/s and p99 of blob redirects through a `verify` route whose answers are all
#     cached, next to the same route without `verify` (wrk, standalone and ext_authz listeners);
#   - cold cache: per-request latency (p50, p99) of redirects that each need a HEAD, next to the
#     bucket's own HEAD latency, measured by one sequential client.
# The bucket is nginx serving empty blobs on loopback. Read the ratios: the machine is shared.
#
# Usage: scripts/bench-presence.sh        (BENCH_DURATION seconds per wrk run, default 5)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cli=$repo/.build/release/redirector
duration=${BENCH_DURATION:-5}
objects=${BENCH_OBJECTS:-1000}
cold=${BENCH_COLD:-2000}
for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench-presence: $tool not found (scripts/setup.sh)" >&2; exit 1; }
done
[ -x "$cli" ] || { echo "bench-presence: $cli not built (swift build -c release)" >&2; exit 1; }

# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
bench_setup bench-presence
wrk_cpu=(); server_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then wrk_cpu=(taskset -c 1); server_cpu=(taskset -c 0); fi

# The bucket: $objects + $cold empty blobs under /containers/images/.
mkdir -p "$work/bucket/containers/images" "$work/nginx/logs"
python3 - "$work" "$objects" "$cold" <<'PY'
import hashlib, sys
work, objects, cold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for name, count in (("warm", objects), ("cold", cold)):
    with open(f"{work}/{name}.txt", "w") as listing:
        for index in range(count):
            digest = "sha256:" + hashlib.sha256(f"{name}-{index}".encode()).hexdigest()
            open(f"{work}/bucket/containers/images/{digest}", "w").close()
            listing.write(digest + "\n")
PY
chmod -R a+rX "$work/bucket"
bucket=$(free_port)
bench_nginx_conf "$work/nginx/nginx.conf" <<EOF
  server { listen 127.0.0.1:$bucket; root $work/bucket; }
EOF
bench_start "$work/nginx.out" nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -g 'daemon off;'
wait_port "$bucket"

printf 'prefix,provider,region\n10.0.0.0/8,,r1\n' >"$work/clients.csv"
for variant in verify plain; do
  flag=""; [ "$variant" = verify ] && flag=", verify: true"
  cat >"$work/$variant.yaml" <<EOF
version: 1
presence: { timeout: 2s, cacheEntries: 100000 }
providers:
  - name: cloud
    sources: [{ format: csv, path: clients.csv }]
routes:
  - name: blob
    path: /v2/{repo...}/blobs/{digest:digest}
    redirect: { to: "http://127.0.0.1:$bucket", rewrite: "/containers/images/{digest}"$flag }
EOF
  "$cli" compile --config "$work/$variant.yaml" --output "$work/$variant.rdb" >/dev/null 2>&1
done

declare -A auto standalone
for variant in verify plain; do
  auto[$variant]=$(free_port); standalone[$variant]=$(free_port)
  bench_start "$work/sidecar-$variant.log" "${server_cpu[@]}" "$cli" serve --snapshot "$work/$variant.rdb" \
    --listen "127.0.0.1:${auto[$variant]}" --listen "standalone=127.0.0.1:${standalone[$variant]}" \
    --trusted-proxy 127.0.0.1 --threads 1 --log-level warning --reload-interval 0
  wait_port "${auto[$variant]}"; wait_port "${standalone[$variant]}"
done

# wrk cycles through the warm blobs as client 10.1.2.3.
cat >"$work/blobs.lua" <<EOF
local paths, i = {}, 0
for line in io.lines("$work/warm.txt") do paths[#paths + 1] = "/v2/pause/blobs/" .. line end
wrk.headers["X-Forwarded-For"] = "10.1.2.3"
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
EOF
# Warm the verify sidecar's cache: one request per blob.
python3 - "${standalone[verify]}" "$work/warm.txt" <<'PY'
import http.client, sys
port, listing = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
for digest in open(listing).read().split():
    conn.request("GET", f"/v2/pause/blobs/{digest}", headers={"X-Forwarded-For": "10.1.2.3"})
    answer = conn.getresponse(); answer.read()
    assert answer.status == 302 and answer.getheader("Location", "").endswith(digest), (answer.status, answer.getheaders())
PY

measure() {  # measure PORT -> "req/s p99_ms"
  "${wrk_cpu[@]}" wrk -t1 -c32 -d"${duration}s" --latency -s "$work/blobs.lua" "http://127.0.0.1:$1" 2>&1 \
    | awk '/Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v} END {printf "%.0f %.2f", rps, p99}'
}

printf '\n%-34s %12s %10s %10s\n' "warm cache ($objects blobs)" "req/s" "p99 ms" "of plain"
for listener in standalone auto; do
  declare -n ports=$listener
  read -r plain_rps plain_p99 <<<"$(measure "${ports[plain]}")"
  read -r verify_rps verify_p99 <<<"$(measure "${ports[verify]}")"
  printf '%-34s %12s %10s %10s\n' "$listener, route without verify" "$plain_rps" "$plain_p99" "100%"
  printf '%-34s %12s %10s %9.1f%%\n' "$listener, verify (answers cached)" "$verify_rps" "$verify_p99" \
    "$(python3 -c "print(100 * $verify_rps / max($plain_rps, 1))")"
done

# Cold cache: each request needs its own HEAD; the bucket's own HEAD latency beside it.
python3 - "${standalone[verify]}" "$bucket" "$work/cold.txt" <<'PY'
import http.client, statistics, sys, time
port, bucket, listing = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
digests = open(listing).read().split()
half = len(digests) // 2

def timed(port, method, path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for digest in path:
        started = time.perf_counter()
        conn.request(method, digest, headers=headers)
        answer = conn.getresponse(); answer.read()
        samples.append((time.perf_counter() - started) * 1e3)
        assert answer.status in (200, 302), answer.status
    return samples

def quantiles(samples):
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]

bucket_samples = timed(bucket, "HEAD", [f"/containers/images/{d}" for d in digests[:half]], {})
cold_samples = timed(port, "GET", [f"/v2/pause/blobs/{d}" for d in digests[half:]], {"X-Forwarded-For": "10.1.2.3"})
(b50, b99), (c50, c99) = quantiles(bucket_samples), quantiles(cold_samples)
print(f"\ncold cache ({len(cold_samples)} distinct blobs, one client)   p50 ms   p99 ms")
print(f"{'the bucket answering a HEAD':42} {b50:8.3f} {b99:8.3f}")
print(f"{'a redirect that needs a HEAD (standalone)':42} {c50:8.3f} {c99:8.3f}")
print(f"{'added by the check and the redirect':42} {c50 - b50:8.3f} {c99 - b99:8.3f}")
PY

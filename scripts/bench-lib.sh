# Shared by the benchmark scripts (sourced, not run): a scratch directory and server processes,
# each in its own session, all stopped by PID and the directory removed when the script exits;
# free loopback ports.
#   bench_setup NAME        work=<new world-readable directory /tmp/NAME.XXXXXX>, cleanup on exit
#   bench_start LOG CMD...  runs CMD in its own session, output to LOG; its PID is in bench_pids
#   free_port               a TCP port free on 127.0.0.1 right now
#   wait_port PORT          waits (10 s at most) until 127.0.0.1:PORT accepts connections
#   bench_nginx_conf FILE [LINE...]  writes an nginx.conf for benchmarks ($bench_workers workers,
#                           default 1, no access log, long keep-alive): the LINEs in the main
#                           context, stdin inside `http {}`
# bench_stop_signal (default TERM) is sent first at exit; KILL follows after 5 s.

bench_pids=()
bench_stop_signal=${bench_stop_signal:-TERM}

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do kill "-$bench_stop_signal" "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}

bench_setup() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$work"
  trap bench_cleanup EXIT
}

bench_start() {
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  bench_pids+=($!)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

bench_nginx_conf() {
  local file=$1; shift
  {
    printf '%s\n' "$@" "worker_processes ${bench_workers:-1};" 'error_log logs/error.log warn;' 'pid logs/nginx.pid;' \
      'events { worker_connections 4096; }' 'http {' '    access_log off;' '    keepalive_requests 1000000;'
    cat
    echo '}'
  } >"$file"
}

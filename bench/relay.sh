#!/usr/bin/env bash
# Relay benchmark: how much latency and throughput does the cocoon chain
# (client -> proxy -> worker) cost compared with a plain nginx hop, in front of
# the same fast fixed-answer backend? Free proxy and paid proxy (durable
# ledger, local chain), at 1 keep-alive connection, 4 and 32. Peers of the
# chain's own shape run too: three nginx hops in a row, in the clear and with
# TLS on the two inner links as the chain has. Before timing it writes back
# the dirty page cache (`sync`): a build's writeback stalls the ledgers'
# fdatasync for tens of ms. See bench/README.md.
#
#   bench/relay.sh [--nginx-only] [--help]
#
# Env:
#   BENCH_SECONDS  seconds per measured wrk run (default 8)
#   COCOON_BIN     cocoon binary (default: target/release/cocoon under the repo)
#   BENCH_KEEP=1   keep the temporary runtime dir (configs, pids, data dir)
#   BENCH_PAID_ARGS  extra `cocoon devnet` arguments for the paid row, e.g.
#                  "--settle-secs 1000 --commit-secs 1000" to see what settling costs
#
# Raw wrk output and logs go to bench/out/relay-<timestamp>/ (git-ignored).
# Exit status: 0 ok; 1 setup error; 3 when any run had non-2xx responses or
# socket errors (the figures are printed anyway, with a loud warning); 4 when
# the chain missed a target (printed as TARGET MISSED lines).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
LUA="$HERE/chat_stream.lua"

NGINX_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --nginx-only) NGINX_ONLY=1 ;;
    -h|--help)
      sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    *) echo "relay: unknown argument: $arg (try --help)" >&2; exit 1 ;;
  esac
done

BENCH_SECONDS="${BENCH_SECONDS:-8}"
if ! [[ "$BENCH_SECONDS" =~ ^[0-9]+$ ]] || (( BENCH_SECONDS < 1 )); then
  echo "relay: BENCH_SECONDS must be a positive integer, got '$BENCH_SECONDS'" >&2
  exit 1
fi
if (( BENCH_SECONDS < 8 )); then
  echo "relay: note: BENCH_SECONDS=$BENCH_SECONDS is below the 8 s the figures are meant for (smoke run)" >&2
fi

COCOON_BIN="${COCOON_BIN:-$REPO/target/release/cocoon}"
case "$COCOON_BIN" in /*) ;; *) COCOON_BIN="$REPO/$COCOON_BIN" ;; esac
if (( ! NGINX_ONLY )) && [[ ! -x "$COCOON_BIN" ]]; then
  echo "relay: cocoon binary not found: $COCOON_BIN" >&2
  echo "relay: build it first:  cargo build --release -p cocoon" >&2
  echo "relay: (or set COCOON_BIN, or run with --nginx-only for the nginx baselines alone)" >&2
  exit 1
fi

# ------------------------------------------------------------------ tools

need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if (( ${#need[@]} )); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "relay: installing ${need[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "relay: missing ${need[*]}; install them (Debian: apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# ---------------------------------------------------------- dirs, cleanup

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cocoon-relay.XXXXXX")"
OUT_DIR="$REPO/bench/out/relay-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"
PIDS=()      # background processes we started, in start order
NAMES=()

stop_pid() {  # pid name: SIGTERM, up to 10 s, then SIGKILL
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "relay: $name (pid $pid) ignored SIGTERM for 10 s; killing" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[$i]}" "${NAMES[$i]}"
  done
  cp "$RUN_DIR"/*.log "$RUN_DIR"/*.conf "$OUT_DIR"/ 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    echo "relay: runtime dir kept at $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT
trap 'echo "relay: interrupted" >&2; exit 130' INT
trap 'echo "relay: terminated" >&2; exit 143' TERM

start_bg() {  # name logfile cmd...
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# Distinct free loopback ports (held open together while choosing).
read -r P_DIRECT P_HOP P_FREE P_PAID P_SEALED P_H3A P_H3B P_H3C P_T3A P_T3B P_T3C < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(11):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)

# -------------------------------------------------------- backend answer

# The SSE answer: 50 content chunks, a finish chunk, a usage chunk, [DONE].
# One line per event, each "\n\n"-terminated as nginx's config parser expands
# the \n escapes inside quoted strings.
sse_events() {
  local base='"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model"'
  local i
  printf 'data: {%s,"choices":[{"index":0,"delta":{"role":"assistant","content":"tok1 "},"finish_reason":null}]}\\n\\n\n' "$base"
  for ((i = 2; i <= 50; i++)); do
    printf 'data: {%s,"choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}\\n\\n\n' "$base" "$i"
  done
  printf 'data: {%s,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\\n\\n\n' "$base"
  printf 'data: {%s,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":50,"total_tokens":51}}\\n\\n\n' "$base"
  printf 'data: [DONE]\\n\\n\n'
}
# nginx caps one config token at about 4 KB, so the ~10 KB answer is cut into
# `set $sseN '...';` pieces of 15 events, and `return 200` joins them.
sse_nginx_directives() {
  local n=0 group=() line
  local vars=""
  flush() {
    if (( ${#group[@]} )); then
      printf "            set \$sse%d '%s';\n" "$n" "$(printf '%s' "${group[@]}")"
      vars+="\$sse$n"
      n=$((n + 1))
      group=()
    fi
  }
  while IFS= read -r line; do
    group+=("$line")
    (( ${#group[@]} == 15 )) && flush
  done < <(sse_events)
  flush
  printf "            return 200 \"%s\";\n" "$vars"
}
MODELS_JSON='{"object":"list","data":[{"id":"bench-model","object":"model","created":1700000000,"owned_by":"bench"}]}'

nginx_common() {  # name
  local name=$1
  [[ $EUID -eq 0 ]] && echo "user $(id -un);"
  cat <<EOF
worker_processes 1;
pid $RUN_DIR/$name.pid;
error_log $RUN_DIR/$name-error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() {  # name
  local name=$1
  mkdir -p "$RUN_DIR/$name-tmp"
  cat <<EOF
    access_log off;
    client_body_temp_path $RUN_DIR/$name-tmp/body;
    proxy_temp_path $RUN_DIR/$name-tmp/proxy;
    fastcgi_temp_path $RUN_DIR/$name-tmp/fastcgi;
    uwsgi_temp_path $RUN_DIR/$name-tmp/uwsgi;
    scgi_temp_path $RUN_DIR/$name-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
EOF
}

{
  nginx_common direct
  echo "http {"
  nginx_http_common direct
  cat <<EOF
    server {
        listen 127.0.0.1:$P_DIRECT;
        location = /v1/models {
            default_type application/json;
            return 200 '$MODELS_JSON';
        }
        location = /v1/chat/completions {
            default_type text/event-stream;
            add_header Cache-Control no-cache;
$(sse_nginx_directives)
        }
        location / {
            default_type application/json;
            return 404 '{"error":{"message":"not found","type":"not_found_error"}}';
        }
    }
}
EOF
} >"$RUN_DIR/direct.conf"

{
  nginx_common hop
  echo "http {"
  nginx_http_common hop
  cat <<EOF
    upstream backend {
        server 127.0.0.1:$P_DIRECT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$P_HOP;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
} >"$RUN_DIR/hop.conf"

# Three nginx hops in a row, the chain's shape (app -> client -> proxy -> worker -> backend):
# HTTP in, two inner links, HTTP out to the backend; with "tls", the inner links are TLS 1.3
# (one P-256 key, sessions reused, upstream connections kept alive) as the chain's are.
# Two workers: the devnet runs its three parts in one process on two threads.
nginx_chain3() {  # name tls(0|1) port_in port_mid port_last
  local name=$1 tls=$2 a=$3 b=$4 c=$5 scheme=http ssl="" reuse=""
  if (( tls )); then
    scheme=https ssl=" ssl" reuse=" proxy_ssl_session_reuse on;"
  fi
  nginx_common "$name" | sed 's/^worker_processes 1;/worker_processes 2;/'
  echo "http {"
  nginx_http_common "$name"
  if (( tls )); then
    cat <<EOF
    ssl_certificate $RUN_DIR/tls.crt;
    ssl_certificate_key $RUN_DIR/tls.key;
    ssl_protocols TLSv1.3;
    proxy_ssl_protocols TLSv1.3;
EOF
  fi
  cat <<EOF
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    upstream backend { server 127.0.0.1:$P_DIRECT; keepalive 64; }
    upstream last { server 127.0.0.1:$c; keepalive 64; }
    upstream mid { server 127.0.0.1:$b; keepalive 64; }
    server { listen 127.0.0.1:$c$ssl; location / { proxy_pass http://backend; } }
    server { listen 127.0.0.1:$b$ssl; location / { proxy_pass $scheme://last;$reuse } }
    server { listen 127.0.0.1:$a; location / { proxy_pass $scheme://mid;$reuse } }
}
EOF
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$RUN_DIR/tls.key" -out "$RUN_DIR/tls.crt" >/dev/null 2>&1 \
  || { echo "relay: openssl could not make the TLS key for the nginx peers" >&2; exit 1; }
nginx_chain3 hop3 0 "$P_H3A" "$P_H3B" "$P_H3C" >"$RUN_DIR/hop3.conf"
nginx_chain3 hop3tls 1 "$P_T3A" "$P_T3B" "$P_T3C" >"$RUN_DIR/hop3tls.conf"

start_nginx() {  # name
  local name=$1
  "$NGINX" -q -t -p "$RUN_DIR/" -e "$RUN_DIR/$name-error.log" -c "$RUN_DIR/$name.conf" \
    || { echo "relay: nginx config $name.conf is invalid" >&2; exit 1; }
  start_bg "nginx-$name" "$RUN_DIR/$name-nginx.log" \
    "$NGINX" -p "$RUN_DIR/" -e "$RUN_DIR/$name-error.log" -c "$RUN_DIR/$name.conf" -g 'daemon off;'
}

# ------------------------------------------------------------ HTTP checks

# wait_models name port model pid: poll GET /v1/models until it lists model.
wait_models() {
  local name=$1 port=$2 model=$3 pid=$4 auth=${5:-}
  python3 - "$name" "$port" "$model" "$pid" "$auth" <<'EOF'
import json, os, sys, time, urllib.request
name, port, model, pid, auth = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
headers = {"Authorization": f"Bearer {auth}"} if auth else {}
deadline = time.monotonic() + 60
last = "no answer"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"relay: {name} exited before becoming ready (see its log)")
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers=headers)
        with op.open(req, timeout=2) as r:
            ids = [m.get("id") for m in json.load(r).get("data") or []]
        if model in ids:
            sys.exit(0)
        last = f"models: {ids}"
    except Exception as e:
        last = repr(e)
    time.sleep(0.2)
sys.exit(f"relay: {name} did not list {model} at :{port}/v1/models within 60 s ({last})")
EOF
}

# preflight name port: one streamed request, checked for shape; prints a summary.
preflight() {
  local name=$1 port=$2 auth=${3:-}
  python3 - "$name" "$port" "$auth" <<'EOF'
import json, sys, urllib.request, urllib.error
name, port, auth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
body = json.dumps({"model": "bench-model", "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
headers = {"Content-Type": "application/json"}
if auth:
    headers["Authorization"] = f"Bearer {auth}"
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                             data=body, headers=headers, method="POST")
try:
    with op.open(req, timeout=30) as r:
        status, ctype, raw = r.status, r.headers.get("Content-Type", ""), r.read()
except urllib.error.HTTPError as e:
    sys.exit(f"relay: {name}: preflight got HTTP {e.code}: {e.read()[:300]!r}")
events = [e for e in raw.decode("utf-8", "replace").split("\n\n") if e.strip()]
content = 0
usage = False
for e in events:
    if e.startswith("data: {"):
        doc = json.loads(e[6:])
        for c in doc.get("choices") or []:
            if (c.get("delta") or {}).get("content"):
                content += 1
        usage = usage or bool(doc.get("usage"))
problems = []
if not ctype.startswith("text/event-stream"):
    problems.append(f"content-type {ctype!r}")
if not events or events[-1].strip() != "data: [DONE]":
    problems.append("no final [DONE]")
if content != 50:
    problems.append(f"{content} content chunks, expected 50")
note = "; ".join(problems) if problems else "ok"
print(f"  preflight {name:<16} HTTP {status}, {len(raw)} bytes, {content} content chunks, "
      f"usage chunk {'yes' if usage else 'no'}: {note}")
sys.exit(1 if problems else 0)
EOF
}

# ------------------------------------------------------------------- wrk

declare -A RPS P50 P99 NON2XX SOCKERR BYTES CPU
WARN=()
CLK_TCK="$(getconf CLK_TCK)"

# CPU time (clock ticks) of a target's process and its children (nginx's workers), from /proc.
cpu_ticks() {  # pid
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    if [[ -r /proc/$p/stat ]]; then
      total=$(( total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
    fi
  done
  echo "$total"
}

run_wrk() {  # key label port threads conns [pid]
  local key=$1 label=$2 port=$3 threads=$4 conns=$5 pid=${6:-}
  local url="http://127.0.0.1:$port/v1/chat/completions"
  local out="$OUT_DIR/wrk-$key-c$conns.txt"
  printf '  %-16s -t%d -c%-3d %2ds ... ' "$label" "$threads" "$conns" "$BENCH_SECONDS"
  local ticks_before=0
  [[ -n "$pid" ]] && ticks_before="$(cpu_ticks "$pid")"
  wrk -t"$threads" -c"$conns" -d"${BENCH_SECONDS}s" --timeout 10s --latency -s "$LUA" "$url" >"$out" 2>&1 || {
    echo "FAILED"; cat "$out" >&2; exit 1; }
  local ticks_after=0
  [[ -n "$pid" ]] && ticks_after="$(cpu_ticks "$pid")"
  local line
  line="$(grep '^BENCH_RESULT ' "$out" || true)"
  if [[ -z "$line" ]]; then
    echo "FAILED (no BENCH_RESULT line)"; cat "$out" >&2; exit 1
  fi
  local -A r=()
  local kv
  for kv in ${line#BENCH_RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  local k="$key/$conns"
  RPS[$k]="$(awk -v n="${r[requests]}" -v d="${r[duration_us]}" 'BEGIN{printf "%.0f", n / (d / 1e6)}')"
  P50[$k]="$(awk -v x="${r[p50_us]}" 'BEGIN{printf "%.3f", x / 1000}')"
  P99[$k]="$(awk -v x="${r[p99_us]}" 'BEGIN{printf "%.3f", x / 1000}')"
  BYTES[$k]="$(awk -v b="${r[bytes]}" -v n="${r[requests]}" 'BEGIN{printf "%.0f", n ? b / n : 0}')"
  NON2XX[$k]="${r[non2xx]}"
  CPU[$k]="-"
  if [[ -n "$pid" ]] && (( r[requests] > 0 )); then
    # The relay's own CPU per request (the backend and wrk not counted): steadier than req/s
    # on a shared machine, where the relay competes with wrk and the backend for the cores.
    CPU[$k]="$(awk -v t=$(( ticks_after - ticks_before )) -v hz="$CLK_TCK" -v n="${r[requests]}" 'BEGIN{printf "%.1f", t * 1e6 / hz / n}')"
  fi
  SOCKERR[$k]=$(( r[connect] + r[read] + r[write] + r[timeout] ))
  # Cross-check with wrk's own human-readable line.
  local human
  human="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")"
  if [[ -n "$human" && "$human" != "${r[non2xx]}" ]]; then NON2XX[$k]="$human"; fi
  echo "${RPS[$k]} req/s, p50 ${P50[$k]} ms, p99 ${P99[$k]} ms"
  local non2xx=${NON2XX[$k]} sockerr=${SOCKERR[$k]}
  if (( non2xx > 0 )); then
    WARN+=("$label -c$conns: $non2xx Non-2xx or 3xx responses out of ${r[requests]} (see $out)")
  fi
  if (( sockerr > 0 )); then
    WARN+=("$label -c$conns: socket errors connect ${r[connect]}, read ${r[read]}, write ${r[write]}, timeout ${r[timeout]} (see $out)")
  fi
}

# Connection counts measured for every target: one keep-alive connection (what
# an app with one SDK client sees), a light load, and saturation.
CONNS=(1 4 32)

bench_target() {  # key label port pid
  local key=$1 label=$2 port=$3 pid=$4
  # Short unmeasured warm-up: connections, caches, lazy init.
  wrk -t1 -c4 -d1s --timeout 10s -s "$LUA" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null 2>&1 || true
  run_wrk "$key" "$label" "$port" 1 1
  run_wrk "$key" "$label" "$port" 1 4
  run_wrk "$key" "$label" "$port" 2 32 "$pid"
}

# ------------------------------------------------------------------ main

echo "relay benchmark: $(date -u +%FT%TZ), $(nproc) cores, $("$NGINX" -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), ${BENCH_SECONDS}s per run"
echo "  raw output: $OUT_DIR"

TARGETS=()

start_nginx_target() {  # name label port: start nginx with name.conf, check it, measure it
  local name=$1 label=$2 port=$3
  start_nginx "$name"
  wait_models "$label" "$port" bench-model "${PIDS[-1]}"
  preflight "$label" "$port"
  TARGETS+=("$name|$label|$port|${PIDS[-1]}")
}

start_nginx_target direct "nginx direct" "$P_DIRECT"
start_nginx_target hop "nginx 1 hop" "$P_HOP"
start_nginx_target hop3 "nginx 3 hops" "$P_H3A"
start_nginx_target hop3tls "nginx 3 hops TLS" "$P_T3A"

start_cocoon() {  # key label port extra-args...
  local key=$1 label=$2 port=$3; shift 3
  mkdir -p "$RUN_DIR/$key-data"
  echo "  starting $COCOON_BIN devnet $*"
  start_bg "$key" "$RUN_DIR/$key.log" \
    "$COCOON_BIN" devnet --backend "http://127.0.0.1:$P_DIRECT" \
      --client-port "$port" --data-dir "$RUN_DIR/$key-data" "$@"
  if ! wait_models "$label" "$port" bench-model "${PIDS[-1]}"; then
    echo "--- $key.log (tail) ---" >&2; tail -n 40 "$RUN_DIR/$key.log" >&2; exit 1
  fi
  if ! preflight "$label" "$port"; then
    WARN+=("$label: preflight response differs from the backend's (see above)")
  fi
  TARGETS+=("$key|$label|$port|${PIDS[-1]}")
}

if (( ! NGINX_ONLY )); then
  # The free proxy keeps no books; the paid one is the devnet's default (durable
  # ledger with group commit, local chain): its last part waits for the fsync.
  # Both in the clear (--e2e off): the relay's own cost, comparable with earlier runs.
  start_cocoon cocoon-free "cocoon free" "$P_FREE" --free --e2e off
  # shellcheck disable=SC2086 # word splitting of the extra arguments is wanted
  start_cocoon cocoon-paid "cocoon paid" "$P_PAID" --e2e off ${BENCH_PAID_ARGS:-}
  # The devnet's default client seals each request to the worker (issue 14): the paid row
  # again with every request sealed (--e2e required), to show what sealing costs.
  # shellcheck disable=SC2086
  start_cocoon cocoon-sealed "cocoon sealed" "$P_SEALED" --e2e required ${BENCH_PAID_ARGS:-}
fi

# A build just before (cargo writes ~1 GiB) leaves that much dirty page cache, which the kernel
# writes back some 30 s later; on ext4 an fdatasync then waits for the journal commit that carries
# it, tens of ms. Measured here: a run of paid at 4 conns that overlapped the writeback of 1.4 GiB
# had a p99 of 48-83 ms (p50 unchanged), whichever build it was. Written back now, before timing.
if (( ! NGINX_ONLY )); then
  dirty_kib="$(awk '/^Dirty:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
  if (( ${dirty_kib:-0} > 65536 )); then
    echo "  writing back $(( dirty_kib / 1024 )) MiB of dirty page cache first (sync), so that it cannot stall the ledgers' flushes mid-run"
  fi
  sync
fi

# The floor under the paid rows: what one group commit's flush costs on the disk that holds the
# ledgers (RUN_DIR), measured the way the ledger commits (a small pwrite into space written and
# synced beforehand, then fdatasync). A paid request's last part waits for at least one.
FLUSH=""
if (( ! NGINX_ONLY )); then
  FLUSH="$(python3 - "$RUN_DIR/flush-probe" <<'EOF'
import os, sys, time
path, n, size = sys.argv[1], 400, 300
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    os.write(fd, b"\0" * (n * size + 4096))
    os.fsync(fd)
    times = []
    for i in range(n):
        t = time.perf_counter()
        os.pwrite(fd, b"x" * size, i * size)
        os.fdatasync(fd)
        times.append(time.perf_counter() - t)
finally:
    os.close(fd)
    os.unlink(path)
times.sort()
print("%.3f %.3f" % (times[n // 2] * 1e3, times[int(n * 0.99)] * 1e3))
EOF
)" || FLUSH=""
fi

echo "measuring (1 s warm-up, then -t1 -c1, -t1 -c4 and -t2 -c32, ${BENCH_SECONDS}s each):"
for t in "${TARGETS[@]}"; do
  IFS='|' read -r key label port pid <<<"$t"
  bench_target "$key" "$label" "$port" "$pid"
done

# ----------------------------------------------------------------- report

# Targets (issue 10): at 1 and 4 connections the chain adds at most 0.5 ms at
# p50 and 1.5 ms at p99 over the backend alone; at 32 it serves at least half
# the req/s of one nginx hop. Both modes.
TARGET_P50_MS=0.5
TARGET_P99_MS=1.5
TARGET_RATIO=0.5
MISSED=()

{
  echo
  printf '%-16s | %5s | %9s | %8s | %8s | %10s | %7s | %10s\n' target conns 'req/s' 'p50 ms' 'p99 ms' 'bytes/resp' 'non-2xx' 'cpu us/req'
  printf '%s\n' '-----------------+-------+-----------+----------+----------+------------+---------+-----------'
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r key label port _ <<<"$t"
    for c in "${CONNS[@]}"; do
      k="$key/$c"
      printf '%-16s | %5s | %9s | %8s | %8s | %10s | %7s | %10s\n' \
        "$label" "$c" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${BYTES[$k]}" "${NON2XX[$k]}" "${CPU[$k]}"
    done
  done
  echo
  for c in 1 4; do
    awk -v c="$c" -v a="${P50[hop/$c]}" -v b="${P50[direct/$c]}" -v x="${P99[hop/$c]}" -v y="${P99[direct/$c]}" \
      'BEGIN{printf "nginx hop adds:   p50 %+.3f ms, p99 %+.3f ms over direct at %d conn(s)\n", a-b, x-y, c}'
  done
  awk -v r="${RPS[hop/32]}" -v s="${RPS[direct/32]}" \
    'BEGIN{printf "nginx hop at 32 conns: throughput ratio hop / direct = %.2f\n", r/s}'
  # The chain's shape in nginx: what three relays cost, with and without TLS inside.
  for c in 1 4; do
    awk -v c="$c" -v a="${P50[hop3tls/$c]}" -v b="${P50[direct/$c]}" -v x="${P99[hop3tls/$c]}" -v y="${P99[direct/$c]}" \
      'BEGIN{printf "nginx 3 hops TLS adds: p50 %+.3f ms, p99 %+.3f ms over direct at %d conn(s)\n", a-b, x-y, c}'
  done
  awk -v p="${RPS[hop3/32]}" -v t="${RPS[hop3tls/32]}" -v s="${RPS[hop/32]}" \
    'BEGIN{printf "nginx 3 hops at 32 conns: throughput ratio / nginx hop = %.2f in the clear, %.2f with TLS inside\n", p/s, t/s}'
  if (( ! NGINX_ONLY )); then
    awk -v h="${CPU[hop/32]}" -v f="${CPU[cocoon-free/32]}" -v p="${CPU[cocoon-paid/32]}" \
      'BEGIN{if (h > 0) printf "relay CPU per request at 32 conns: nginx hop %.1f us, chain (free) %.1f us (%.1fx), chain (paid) %.1f us (%.1fx)\n", h, f, f/h, p, p/h}'
    awk -v t="${CPU[hop3tls/32]}" -v f="${CPU[cocoon-free/32]}" -v r="${RPS[cocoon-free/32]}" -v s="${RPS[hop3tls/32]}" \
      'BEGIN{if (t > 0) printf "chain (free) against nginx 3 hops TLS at 32 conns: throughput %.2fx, CPU per request %.1f against %.1f us\n", r/s, f, t}'
    for c in 1 4; do
      awk -v c="$c" -v a="${P50[cocoon-sealed/$c]}" -v b="${P50[cocoon-paid/$c]}" -v x="${P99[cocoon-sealed/$c]}" -v y="${P99[cocoon-paid/$c]}" \
        'BEGIN{printf "sealing adds:     p50 %+.3f ms, p99 %+.3f ms over paid in the clear at %d conn(s)\n", a-b, x-y, c}'
    done
    awk -v s="${CPU[cocoon-sealed/32]}" -v p="${CPU[cocoon-paid/32]}" -v r="${RPS[cocoon-sealed/32]}" -v q="${RPS[cocoon-paid/32]}" \
      'BEGIN{if (p > 0) printf "sealing at 32 conns: %+.1f us CPU per request, throughput sealed / clear = %.2f\n", s-p, r/q}'
    if [[ -n "$FLUSH" ]]; then
      read -r flush_p50 flush_p99 <<<"$FLUSH"
      echo "disk under the ledgers: one commit's flush (300 B pwrite + fdatasync) p50 ${flush_p50} ms, p99 ${flush_p99} ms; a paid request's end waits for its record's commit, often for the end of the one in flight first"
    fi
  fi
  if (( NGINX_ONLY )); then
    echo "chain adds: (not measured: --nginx-only)"
  fi
} | tee "$OUT_DIR/summary.txt"

if (( ! NGINX_ONLY )); then
  for mode in free paid; do
    key="cocoon-$mode"
    for c in 1 4; do
      line="$(awk -v m="$mode" -v c="$c" -v a="${P50[$key/$c]}" -v b="${P50[direct/$c]}" \
        -v x="${P99[$key/$c]}" -v y="${P99[direct/$c]}" -v tp="$TARGET_P50_MS" -v tq="$TARGET_P99_MS" \
        'BEGIN{p=a-b; q=x-y; ok=(p<=tp && q<=tq);
               printf "chain (%s) adds: p50 %+.3f ms, p99 %+.3f ms over direct at %d conn(s) [target <= +%.1f / +%.1f: %s]",
                      m, p, q, c, tp, tq, ok ? "ok" : "MISSED"}')"
      echo "$line" | tee -a "$OUT_DIR/summary.txt"
      if [[ "$line" == *MISSED* ]]; then MISSED+=("$line"); fi
    done
    line="$(awk -v m="$mode" -v r="${RPS[$key/32]}" -v s="${RPS[hop/32]}" -v t="$TARGET_RATIO" \
      'BEGIN{x=r/s; printf "chain (%s) at 32 conns: throughput ratio chain / nginx-hop = %.2f [target >= %.1f: %s]",
             m, x, t, (x>=t) ? "ok" : "MISSED"}')"
    echo "$line" | tee -a "$OUT_DIR/summary.txt"
    if [[ "$line" == *MISSED* ]]; then MISSED+=("$line"); fi
  done
fi

if (( ${#WARN[@]} )); then
  {
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! WARNING: some requests FAILED; the figures above are not valid   !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    printf '!!! %s\n' "${WARN[@]}"
  } | tee -a "$OUT_DIR/summary.txt" >&2
  exit 3
fi

if (( ${#MISSED[@]} )); then
  {
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! TARGET MISSED: the relay is slower than it must be (a regression) !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    printf '!!! %s\n' "${MISSED[@]}"
  } | tee -a "$OUT_DIR/summary.txt" >&2
  exit 4
fi

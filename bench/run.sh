#!/usr/bin/env bash
# bench/run.sh -- `make bench`: pyexec against plain nginx returning a fixed
# JSON, measured back to back in one run (this machine is noisy: compare
# ratios, not absolute req/s).  Both servers run one worker pinned to core 0,
# wrk runs on core 1.  Prints one table, then trivial /execute through the
# shipped nginx.conf's routing front (2 workers, also on core 0) against
# direct and plain nginx, then /health latency while a cell computes on the
# same worker.
#
# Env: SECS (5) CONNS (32) ROUNDS (3) WORKLOADS ("health trivial print state
#      many cpu") BUSY_SECS (5)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=$ROOT/build/bench
SECS=${SECS:-5}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
BUSY_SECS=${BUSY_SECS:-5}
SERVER_CPUS=${SERVER_CPUS:-0}
WORKLOADS=${WORKLOADS:-health trivial print state many cpu}
BASE_PORT=${BASE_PORT:-18999}
PY_PORT=${PY_PORT:-18998}
FRONT_PORT=${FRONT_PORT:-18997}
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_pyexec_module.so}

command -v wrk >/dev/null || { echo "bench: wrk missing (make deps-bench)" >&2; exit 2; }
[ -f "$MODULE" ] || { echo "bench: $MODULE missing (make build)" >&2; exit 2; }

mkdir -p "$OUT/base/logs" "$OUT/py/logs" "$OUT/py/data" \
         "$OUT/front/logs" "$OUT/front/run" "$OUT/front/data" "$OUT/front/sock"
[ "$(id -u)" != 0 ] || chown nobody:nogroup "$OUT/front/data" "$OUT/front/sock"
user=""; [ "$(id -u)" = 0 ] && user="user root;"

common() { # prefix port
    cat <<_EOC_
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
$user
events { worker_connections 4096; }
_EOC_
}

http_common() { # prefix
    cat <<_EOC_
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    default_type application/json;
_EOC_
}

{
    common "$OUT/base"
    echo "http {"
    http_common "$OUT/base"
    cat <<_EOC_
    server {
        listen 127.0.0.1:$BASE_PORT;
        location = /health  { return 200 '{"status":"healthy"}'; }
        location = /execute { return 200 '{"result":2,"session_id":"s1","success":true,"error":null}'; }
    }
}
_EOC_
} > "$OUT/base/nginx.conf"

{
    echo "load_module $MODULE;"
    common "$OUT/py"
    echo "thread_pool pyexec threads=1 max_queue=65536;"
    echo "http {"
    http_common "$OUT/py"
    cat <<_EOC_
    pyexec_data_dir $OUT/py/data;
    pyexec_session_queue 256;
    server {
        listen 127.0.0.1:$PY_PORT;
        location = /health  { pyexec_health; }
        location = /execute { pyexec_execute; }
    }
}
_EOC_
} > "$OUT/py/nginx.conf"

# the shipped configuration, as `make run` renders it, on its own port
# (session queue as deep as the direct server's: wrk's 32 connections
# share one session in the trivial workload)
sed -e "s/127\.0\.0\.1:8123/127.0.0.1:$FRONT_PORT/" \
    -e "s#/run/pyexec/#$OUT/front/sock/#g" \
    -e "s#^load_module .*;#load_module $MODULE;#" \
    -e "s#^error_log .*;#error_log $OUT/front/logs/error.log warn;#" \
    -e "s#^\(    access_log\) .*;#\1 off;#" \
    -e "s/pyexec_session_queue 16;/pyexec_session_queue 256;/" \
    "$ROOT/nginx.conf" > "$OUT/front/nginx.conf"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for s in base py front; do
    taskset -c "$SERVER_CPUS" "$NGINX" -p "$OUT/$s/" -c "$OUT/$s/nginx.conf" -e "$OUT/$s/logs/error.log" &
    pids+=($!)
done
for port in $BASE_PORT $PY_PORT $FRONT_PORT; do
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.02; done
done

run_wrk() { # url script conns secs -> "rps p50_us p99_us non2xx errors"
    taskset -c 1 wrk -t1 -c"$3" -d"$4"s --timeout 10s -s "$HERE/lua/$2.lua" "$1" 2>&1 \
        | awk '/^RESULT/ {print $4, $5, $6, $7, $8}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "# pyexec bench: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
echo "# wrk -t1 -c$CONNS -d${SECS}s on core 1, servers on core 0, $ROUNDS rounds, medians"
printf '%-8s %12s %12s %8s %9s %9s %7s\n' workload nginx_rps pyexec_rps ratio p50_ms p99_ms non2xx
for w in $WORKLOADS; do
    rb=(); rp=(); ratios=(); p50s=(); p99s=(); bad=0
    for _ in $(seq "$ROUNDS"); do
        taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s "$HERE/lua/$w.lua" "http://127.0.0.1:$PY_PORT" >/dev/null 2>&1 || true
        read -r b _ _ _ _ <<<"$(run_wrk "http://127.0.0.1:$BASE_PORT" "$w" "$CONNS" "$SECS")"
        read -r p p50 p99 n2 err <<<"$(run_wrk "http://127.0.0.1:$PY_PORT" "$w" "$CONNS" "$SECS")"
        rb+=("$b"); rp+=("$p"); p50s+=("$p50"); p99s+=("$p99")
        ratios+=("$(awk -v a="$p" -v b="$b" 'BEGIN {printf "%.3f", a / b}')")
        bad=$((bad + n2 + err))
    done
    printf '%-8s %12.0f %12.0f %8s %9.2f %9.2f %7s\n' "$w" \
        "$(printf '%s\n' "${rb[@]}" | median)" "$(printf '%s\n' "${rp[@]}" | median)" \
        "$(printf '%s\n' "${ratios[@]}" | median)" \
        "$(printf '%s\n' "${p50s[@]}" | median | awk '{print $1 / 1000}')" \
        "$(printf '%s\n' "${p99s[@]}" | median | awk '{print $1 / 1000}')" "$bad"
done

# trivial /execute (one session) and the state cell over 1000 sessions,
# three ways side by side in each round
echo
echo "# routing: plain nginx vs one worker direct vs the shipped front (2 workers), same core"
printf '%-8s %-22s %12s %8s %9s %9s %7s\n' workload path rps ratio p50_ms p99_ms non2xx
for w in trivial many; do
    declare -A rr=() r50=() r99=() rbad=()
    for _ in $(seq "$ROUNDS"); do
        for t in "nginx $BASE_PORT" "direct $PY_PORT" "front $FRONT_PORT"; do
            read -r name port <<<"$t"
            taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s "$HERE/lua/$w.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
            read -r p p50 p99 n2 err <<<"$(run_wrk "http://127.0.0.1:$port" "$w" "$CONNS" "$SECS")"
            rr[$name]+="$p "; r50[$name]+="$p50 "; r99[$name]+="$p99 "
            rbad[$name]=$(( ${rbad[$name]:-0} + n2 + err ))
        done
    done
    nrps=$(printf '%s\n' ${rr[nginx]} | median)
    for name in nginx direct front; do
        rps=$(printf '%s\n' ${rr[$name]} | median)
        case $name in
            nginx)  label="plain nginx (static)" ;;
            direct) label="direct, one worker" ;;
            front)  label="through the front" ;;
        esac
        printf '%-8s %-22s %12.0f %8.3f %9.2f %9.2f %7s\n' "$w" "$label" "$rps" \
            "$(awk -v a="$rps" -v b="$nrps" 'BEGIN {print a / b}')" \
            "$(printf '%s\n' ${r50[$name]} | median | awk '{print $1 / 1000}')" \
            "$(printf '%s\n' ${r99[$name]} | median | awk '{print $1 / 1000}')" "${rbad[$name]}"
    done
done

# /health while a cell computes on the same (only) worker: an open-loop
# probe (sequential GETs 2 ms apart, like a health checker) and, for
# contrast, wrk saturating the event loop that shares core 0 with the cell.
busy_cell() {
    curl -s -o "$OUT/busy.json" -m $((BUSY_SECS + 30)) -H 'Content-Type: application/json' \
        -d "{\"code\": \"while True:\\n    pass\", \"session_id\": \"busy\", \"timeout\": $1}" \
        "http://127.0.0.1:$PY_PORT/execute" &
    busy=$!
    sleep 0.3
}
busy_done() {
    wait "$busy" || true
    grep -q '"error_name":"TimeoutError"' "$OUT/busy.json" \
        || { echo "bench: the busy cell did not run as expected" >&2; cat "$OUT/busy.json" >&2; exit 1; }
}

read -r i50 i99 imax ierr <<<"$(taskset -c 1 /usr/bin/python3 "$HERE/probe.py" "http://127.0.0.1:$PY_PORT/health" 1000 2)"
busy_cell $((BUSY_SECS + 2))
read -r b50 b99 bmax berr <<<"$(taskset -c 1 /usr/bin/python3 "$HERE/probe.py" "http://127.0.0.1:$PY_PORT/health" 1000 2)"
busy_done
# the same with the worker allowed on both cores (as an unpinned deployment)
for pid in $(pgrep -f "nginx: worker process" -P "${pids[1]}"); do taskset -a -p -c 0,1 "$pid" >/dev/null; done
busy_cell $((BUSY_SECS + 2))
read -r u50 u99 umax uerr <<<"$(taskset -c 1 /usr/bin/python3 "$HERE/probe.py" "http://127.0.0.1:$PY_PORT/health" 1000 2)"
busy_done
for pid in $(pgrep -f "nginx: worker process" -P "${pids[1]}"); do taskset -a -p -c 0 "$pid" >/dev/null; done

busy_cell $((BUSY_SECS + 1))
read -r hr h50 h99 hn2 herr <<<"$(run_wrk "http://127.0.0.1:$PY_PORT" health 4 "$BUSY_SECS")"
busy_done

echo
echo "/health latency, 1000 sequential probes 2 ms apart (bench/probe.py):"
printf '  idle worker:                                   p50 %s ms, p99 %s ms, max %s ms, errors %s\n' "$i50" "$i99" "$imax" "$ierr"
printf '  cell busy, same worker, worker on core 0 only:  p50 %s ms, p99 %s ms, max %s ms, errors %s\n' "$b50" "$b99" "$bmax" "$berr"
printf '  cell busy, same worker, worker on cores 0-1:    p50 %s ms, p99 %s ms, max %s ms, errors %s\n' "$u50" "$u99" "$umax" "$uerr"
printf '/health under wrk -c4 while the cell runs: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %s\n' \
    "$hr" "$(awk -v v="$h50" 'BEGIN {print v / 1000}')" "$(awk -v v="$h99" 'BEGIN {print v / 1000}')" "$((hn2 + herr))"
awk -v v="$b99" 'BEGIN { print (v > 2.0) ? "GOAL MISSED on a shared core: /health p99 above 2 ms during a busy cell" : "goal met on a shared core: /health p99 <= 2 ms during a busy cell" }'
awk -v v="$u99" 'BEGIN { print (v > 2.0) ? "GOAL MISSED on two cores: /health p99 above 2 ms during a busy cell" : "goal met on two cores: /health p99 <= 2 ms during a busy cell" }'

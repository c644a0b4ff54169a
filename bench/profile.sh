#!/usr/bin/env bash
# bench/profile.sh [WORKLOAD] -- where a pyexec worker spends its time:
# `perf record -g` on the one worker of bench/run.sh's direct server
# (build/bench/py/nginx.conf, written by `make bench`) while wrk drives
# WORKLOAD (default trivial) for SECS seconds; prints perf's top entries,
# by thread (event loop vs interpreter thread) and by symbol.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=$ROOT/build/bench
W=${1:-trivial}
SECS=${SECS:-5}
PORT=${PY_PORT:-18998}
NGINX=${NGINX:-/usr/sbin/nginx}
[ -f "$OUT/py/nginx.conf" ] || { echo "profile: run make bench first" >&2; exit 2; }
command -v perf >/dev/null || { echo "profile: perf missing (apt-get install linux-perf)" >&2; exit 2; }

taskset -c 0 "$NGINX" -p "$OUT/py/" -c "$OUT/py/nginx.conf" -e "$OUT/py/logs/error.log" &
master=$!
trap 'kill $master 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.02; done
worker=$(pgrep -P "$master" -f 'nginx: worker')
taskset -c 1 wrk -t1 -c32 -d1s -s "$HERE/lua/$W.lua" "http://127.0.0.1:$PORT" >/dev/null
taskset -c 1 wrk -t1 -c32 -d"$((SECS + 1))"s -s "$HERE/lua/$W.lua" "http://127.0.0.1:$PORT" >/dev/null &
sleep 0.5
perf record -q -F 1999 -g -p "$worker" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
wait %2 2>/dev/null || true
echo "# perf, $W, worker $worker: by thread"
perf report -i "$OUT/perf.data" --stdio --no-children --sort pid -q 2>/dev/null | grep -v '^$' | head -5
echo "# by symbol (self time)"
perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,sym -q -g none 2>/dev/null \
    | grep -v '^$' | head -25

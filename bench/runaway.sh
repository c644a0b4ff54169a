#!/usr/bin/env bash
# bench/runaway.sh -- bench/runaway.py against the shipped nginx.conf with
# pyexec_kill_grace 3s: /health latency while cells run away (a loop that
# swallows TimeoutError, an interrupt, a C loop that recycles a worker),
# as a ratio to plain nginx (`return 200`, two workers) in the same run,
# and the interrupt's latency.  Fails when a goal is missed.  Run by
# `make bench`.
#
# Env: RUNAWAY_PORT (18995; plain nginx on the next port)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${RUNAWAY_PORT:-18995}
PLAIN=$((PORT + 1))
. "$HERE/shipped.sh"
OUT=$ROOT/build/bench/runaway
rm -rf "$OUT"
shipped_conf "$OUT" "$PORT" 's/^\(    pyexec_kill_grace\) .*;/\1 3s;/'
mkdir -p "$OUT/plain/logs"
cat > "$OUT/plain/nginx.conf" <<EOF
worker_processes 2;
pid $OUT/plain/nginx.pid;
error_log $OUT/plain/logs/error.log;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:$PLAIN;
        location = /health {
            default_type application/json;
            return 200 '{"status":"healthy"}';
        }
    }
}
EOF
"$NGINX" -p "$OUT/plain/" -c "$OUT/plain/nginx.conf"
shipped_start "$OUT" "$PORT"
trap 'kill -QUIT $master 2>/dev/null || true
      "$NGINX" -p "$OUT/plain/" -c "$OUT/plain/nginx.conf" -s quit 2>/dev/null || true
      wait 2>/dev/null || true' EXIT
echo "# pyexec bench/runaway.sh: $(date -u +%FT%TZ), $(nproc) cores"
/usr/bin/python3 "$HERE/runaway.py" "$PORT" "$PLAIN"

#!/usr/bin/env bash
# bench/soak.sh -- the shipped nginx.conf (front + workers) under
# bench/soak.py: SOAK_REQUESTS (1 000 000) mixed requests, every answer
# checked, RSS of all nginx processes within SOAK_RSS_PCT (5%) of its
# value after the warm-up.  `make soak`.  Exits 1 on any wrong answer,
# on memory growth, or when a worker died (the error log is checked).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${SOAK_PORT:-18997}
. "$HERE/shipped.sh"
shipped_bench soak "$PORT"

rc=0
/usr/bin/python3 "$HERE/soak.py" --port "$PORT" --master "$master" \
    --requests "${SOAK_REQUESTS:-1000000}" --conns "${SOAK_CONNS:-4}" || rc=1

if grep -E '\[(alert|crit|emerg)\]|exited on signal' "$OUT/logs/error.log"; then
    echo "soak: FAIL: the error log above"
    rc=1
fi
exit $rc

#!/usr/bin/env bash
# bench/runaway.sh -- bench/runaway.py against the shipped nginx.conf with
# pyexec_kill_grace 3s: /health latency while cells run away (a loop that
# swallows TimeoutError, an interrupt, a C loop that recycles a worker),
# as a ratio to an idle server in the same run, and the interrupt's
# latency.  Fails when a goal is missed.  Run by `make bench`.
#
# Env: RUNAWAY_PORT (18995)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${RUNAWAY_PORT:-18995}
. "$HERE/shipped.sh"
OUT=$ROOT/build/bench/runaway
rm -rf "$OUT"
shipped_conf "$OUT" "$PORT" 's/^\(    pyexec_kill_grace\) .*;/\1 3s;/'
shipped_start "$OUT" "$PORT"
echo "# pyexec bench/runaway.sh: $(date -u +%FT%TZ), $(nproc) cores"
/usr/bin/python3 "$HERE/runaway.py" "$PORT"

#!/usr/bin/env bash
# bench/checkpoint.sh -- bench/checkpoint.py against the shipped nginx.conf:
# what durable sessions cost (checkpoint size and time, the wait a
# neighbour's cell sees behind a checkpoint, restore after kill -9), as
# ratios to the same calls without them.  Run by `make bench`.
#
# Env: CHECKPOINT_PORT (18996)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${CHECKPOINT_PORT:-18996}
. "$HERE/shipped.sh"
shipped_bench checkpoint "$PORT"
echo "# pyexec bench/checkpoint.sh: $(date -u +%FT%TZ), $(nproc) cores"
/usr/bin/python3 "$HERE/checkpoint.py" "$PORT" "$OUT/state"

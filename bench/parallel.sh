#!/usr/bin/env bash
# bench/parallel.sh -- bench/parallel.py against the shipped nginx.conf:
# process pools, loky and subprocess in a cell, as a ratio to the same
# code under /usr/bin/python3.11.  Run by `make bench`.
#
# Env: PARALLEL_PORT (18997)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PARALLEL_PORT:-18997}
. "$HERE/shipped.sh"
shipped_bench parallel "$PORT"
echo "# pyexec bench/parallel.sh: $(date -u +%FT%TZ), $(nproc) cores"
/usr/bin/python3 "$HERE/parallel.py" "$PORT"

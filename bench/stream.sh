#!/usr/bin/env bash
# bench/stream.sh -- bench/stream.py against the shipped nginx.conf (its
# caps on a reply's output and on the journal raised, so a 20 MB output
# is answered and kept whole): how fast a cell's events reach a client that reads as fast as
# they come, live ("stream": true) and replayed (GET
# /executions/{id}/events), as ratios to the same bytes as one JSON reply
# in the same run.  Fails when a goal is missed.  Run by `make bench`.
#
# Env: STREAM_PORT (18991), ROUNDS (5)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${STREAM_PORT:-18991}
. "$HERE/shipped.sh"
OUT=$ROOT/build/bench/stream
rm -rf "$OUT"
shipped_conf "$OUT" "$PORT" \
    "s/^\( *pyexec_journal_execution_max\) .*;/\1 128m;/" \
    "s/^\( *pyexec_journal_max\) .*;/\1 512m;/" \
    "s/^\( *pyexec_output_max\) .*;/\1 32m;/"
shipped_start "$OUT" "$PORT"
echo "# pyexec bench/stream.sh: $(date -u +%FT%TZ), $(nproc) cores"
/usr/bin/python3 "$HERE/stream.py" "$PORT" "${ROUNDS:-5}"

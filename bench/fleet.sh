#!/usr/bin/env bash
# bench/fleet.sh -- bench/fleet.py: N agents (default 8) running a
# DABstep-like trace with think time against pyexec (the shipped
# nginx.conf with tools/workers.sh's worker count, as `make run`), one
# Jupyter kernel per agent, and the replaced service, one after the other
# in one run.  Fails when a goal is missed.  Run by `make bench`.
#
# Env: FLEET_PORT (18993; the reference on the next port), AGENTS (8),
#      ROUNDS (2), THINK (0.5 s mean), WORKERS (tools/workers.sh),
#      FLEET_SED (a sed expression applied to the shipped conf as well)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${FLEET_PORT:-18993}
REF=$((PORT + 1))
. "$HERE/shipped.sh"
WORKERS=${WORKERS:-$("$ROOT/tools/workers.sh")}
OUT=$ROOT/build/bench/fleet
rm -rf "$OUT"
shipped_conf "$OUT" "$PORT" "s/^worker_processes .*;/worker_processes $WORKERS;/" ${FLEET_SED:+"$FLEET_SED"}
shipped_start "$OUT" "$PORT"
SEEDREF_DATA_DIR="$OUT/data" CPUS="" \
    "$ROOT/../shared/bench/seedref/run.sh" "$REF" > "$OUT/logs/seedref.log" 2>&1 &
ref=$!
trap 'kill -QUIT $master 2>/dev/null || true; kill $ref 2>/dev/null || true
      wait 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$REF/health" && break
    sleep 0.1
done
echo "# pyexec bench/fleet.sh: $(date -u +%FT%TZ), $(nproc) cores, $WORKERS workers, ${AGENTS:-8} agents"
/usr/bin/python3 "$HERE/fleet.py" --pyexec "$PORT" --reference "$REF" \
    --data "$OUT/data" --agents "${AGENTS:-8}" --rounds "${ROUNDS:-2}" \
    --think "${THINK:-0.5}" --pids-pyexec "$master" --workers "$WORKERS" \
    --pids-ref "$ref"

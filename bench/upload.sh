#!/usr/bin/env bash
# bench/upload.sh -- a 500 MB upload through the shipped nginx.conf (front
# and workers) must not grow any nginx process's peak RSS by more than
# 16 MB: the body streams to the worker's temp file and is unpacked in
# 64 KB pieces.  Measures VmHWM (peak RSS) of every nginx process before and
# after; exits 1 when the bound is broken.  Run by `make bench`.
#
# Env: UPLOAD_MB (500) LIMIT_MB (16) UPLOAD_PORT (18996)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MB=${UPLOAD_MB:-500}
LIMIT_MB=${LIMIT_MB:-16}
PORT=${UPLOAD_PORT:-18996}
. "$HERE/shipped.sh"
shipped_bench upload "$PORT"
# the interpreters are up once a cell ran on each worker
curl -s -o /dev/null "http://127.0.0.1:$PORT/sessions"

hwm() { # pid -> peak RSS in kB
    awk '/^VmHWM/ {print $2}' "/proc/$1/status"
}
procs=$(pgrep -P "$master" -f 'nginx: worker process'; echo "$master")
declare -A before
for p in $procs; do before[$p]=$(hwm "$p"); done

big=$OUT/big.bin
head -c "$((MB * 1024 * 1024))" /dev/urandom > "$big"
t0=$(date +%s.%N)
resp=$(curl -s -F "files=@$big;filename=big.bin" "http://127.0.0.1:$PORT/upload")
t1=$(date +%s.%N)
echo "upload: $resp"
echo "$resp" | grep -q '"success":true' || { echo "bench: upload failed" >&2; exit 1; }
cmp -s "$big" "$OUT/data/big.bin" || { echo "bench: stored file differs" >&2; exit 1; }

worst=0
printf '%-8s %-10s %12s %12s %10s\n' pid role hwm_before hwm_after growth_mb
for p in $procs; do
    after=$(hwm "$p")
    growth=$(( (after - before[$p]) / 1024 ))
    role=worker; [ "$p" = "$master" ] && role=master
    printf '%-8s %-10s %10s kB %10s kB %10s\n' "$p" "$role" "${before[$p]}" "$after" "$growth"
    [ "$growth" -le "$worst" ] || worst=$growth
done
awk -v mb="$MB" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d MB in %.1f s (%.0f MB/s), byte-identical\n", mb, b - a, mb / (b - a)}'
rm -f "$big" "$OUT/data/big.bin"
if [ "$worst" -gt "$LIMIT_MB" ]; then
    echo "GOAL MISSED: peak RSS grew by $worst MB (limit $LIMIT_MB MB)"
    exit 1
fi
echo "goal met: peak RSS growth $worst MB <= $LIMIT_MB MB"

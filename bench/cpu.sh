#!/usr/bin/env bash
# bench/cpu.sh -- CPU-bound code: a pure-Python loop, a C-level loop and a
# pandas groupby, timed by one driver (bench/cpu/driver.py) in
# /usr/bin/python3.11, in a minimal embedder of the same libpython linked
# as the module links it (bench/cpu/embed.c), and in a pyexec cell (the
# shipped conf), each in the calling thread and in a Python thread; the
# ratios are to the embedder's thread (a cell runs in a thread too).
# Fails when a cell's workload takes more than 1.10x the embedder's thread.
#
# Env: CPU_PORT (18992), REPEAT (5)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${CPU_PORT:-18992}
REPEAT=${REPEAT:-5}
. "$HERE/shipped.sh"
OUT=$ROOT/build/bench/cpu
rm -rf "$OUT"
mkdir -p "$OUT"

# the module's link line (config): Python linked in from the -pic archive,
# its symbols exported (-rdynamic) as nginx loads the module RTLD_GLOBAL
ver=$(pkg-config --modversion python3-embed)
pic=/usr/lib/python$ver/config-$ver-$(gcc -print-multiarch)/libpython$ver-pic.a
# shellcheck disable=SC2046
gcc $(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS) \
    $(pkg-config --cflags python3-embed) -o "$OUT/embed" "$HERE/cpu/embed.c" \
    $(dpkg-buildflags --get LDFLAGS) -rdynamic \
    -Wl,--whole-archive "$pic" -Wl,--no-whole-archive \
    -ldl -lm -lz -lexpat -lpthread -lutil

shipped_conf "$OUT" "$PORT"
shipped_start "$OUT" "$PORT"

echo "# pyexec bench/cpu.sh: $(date -u +%FT%TZ), $(nproc) cores, Python $ver, median of $REPEAT interleaved runs"
/usr/bin/python3 - "$PORT" "$HERE/cpu/driver.py" "$OUT" "$REPEAT" <<'EOF'
import json, statistics, subprocess, sys, urllib.request
port, driver, out, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
code = open(driver).read()


def pyexec():
    body = json.dumps({"code": code, "session_id": "cpu-bench",
                       "timeout": 300}).encode()
    req = urllib.request.Request("http://127.0.0.1:%s/execute" % port,
                                 data=body,
                                 headers={"Content-Type": "application/json"})
    reply = json.loads(urllib.request.urlopen(req, timeout=400).read())
    if not reply.get("success"):
        sys.exit("the pyexec cell failed: %s" % reply.get("error"))
    return json.loads(reply["stdout"])


def run(argv):
    return json.loads(subprocess.run(argv, check=True, capture_output=True,
                                     text=True).stdout)


runs = {"python": [], "embed": [], "pyexec": []}
for _ in range(repeat):     # interleaved: the machine's drift hits all three
    runs["python"].append(run(["/usr/bin/python3.11", driver]))
    runs["embed"].append(run([out + "/embed", driver]))
    runs["pyexec"].append(pyexec())
med = {k: {w: {t: statistics.median(r[w][t] for r in v)
               for t in ("main", "thread")} for w in v[0]}
       for k, v in runs.items()}
print("%-8s %-7s %11s %11s %11s %9s %12s" % (
    "workload", "thread", "python3.11", "embedder", "pyexec",
    "py/embed", "pyexec/embed"))
for w in med["pyexec"]:
    for t in ("main", "thread"):
        base = med["embed"][w]["thread"]
        print("%-8s %-7s %9.3fms %9.3fms %9.3fms %8.2fx %11.2fx" % (
            w, t, med["python"][w][t], med["embed"][w][t],
            med["pyexec"][w][t], med["python"][w][t] / base,
            med["pyexec"][w][t] / base))
# the goal: a cell (it runs in a thread) within 10% of the embedder's thread
missed = 0
for w in med["pyexec"]:
    r = med["pyexec"][w]["thread"] / med["embed"][w]["thread"]
    met = r <= 1.10
    missed += not met
    print("%s %s in a cell within 10%% of the embedder's thread (%.2fx)"
          % ("goal met:   " if met else "GOAL MISSED:", w, r))
sys.exit(1 if missed else 0)
EOF

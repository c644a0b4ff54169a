#!/usr/bin/python3
"""parallel.py PORT -- process parallelism in pyexec against the same code
run by /usr/bin/python3.11: each workload is timed inside the cell and
inside the script (time.perf_counter around the work only, best of
ROUNDS), and printed with its ratio pyexec / plain.  The pyexec side runs
in one session of the server on 127.0.0.1:PORT (the shipped conf)."""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

PORT = int(sys.argv[1])
ROUNDS = 3
PRELUDE = '''import time, multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from joblib import Parallel, delayed
def sq(x):
    return x * x
'''
WORK = {
    "Pool fork": 'with mp.get_context("fork").Pool(2) as p: p.map(sq, range(1000))',
    "Pool spawn": 'with mp.get_context("spawn").Pool(2) as p: p.map(sq, range(1000))',
    "Pool forkserver": 'with mp.get_context("forkserver").Pool(2) as p: p.map(sq, range(1000))',
    "ProcessPoolExecutor": 'with ProcessPoolExecutor(2) as ex: list(ex.map(sq, range(200)))',
    "joblib loky": 'Parallel(n_jobs=2)(delayed(sq)(i) for i in range(200))',
    "subprocess python": 'import subprocess, sys; subprocess.run([sys.executable, "-c", "pass"])',
}


def timed(work):
    return ("best = None\nfor _ in range(%d):\n    t = time.perf_counter()\n"
            "    %s\n    d = time.perf_counter() - t\n"
            "    best = d if best is None else min(best, d)\nprint(best)\n"
            % (ROUNDS, work))


def pyexec(code):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/execute" % PORT,
        json.dumps({"code": code, "session_id": "bench-parallel",
                    "timeout": 600}).encode(),
        {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=700))
    if not r["success"]:
        raise SystemExit("pyexec: %s" % r["error"])
    return float(r["stdout"].split()[-1])


def plain(code):
    # a script file: spawn children re-import it to find sq (with -c
    # they cannot, and a spawn Pool then waits for ever)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "plain.py")
        with open(path, "w") as f:
            f.write(PRELUDE + 'if __name__ == "__main__":\n'
                    + "".join("    " + line + "\n"
                              for line in code.splitlines()))
        out = subprocess.run(["/usr/bin/python3.11", path], timeout=600,
                             capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


pyexec(PRELUDE + "print(0)")
print("%-22s %10s %10s %7s" % ("workload", "pyexec_ms", "plain_ms", "ratio"))
for name, work in WORK.items():
    a = pyexec(timed(work))
    b = plain(timed(work))
    print("%-22s %10.1f %10.1f %7.2f" % (name, a * 1000, b * 1000, a / b))

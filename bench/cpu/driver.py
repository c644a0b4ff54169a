# bench/cpu/driver.py -- the same timing loop for every runner of
# bench/cpu.sh: /usr/bin/python3.11, the minimal embedder (embed.c) and a
# pyexec cell.  Prints one JSON line: {workload: {"main": ms, "thread": ms}}
# (median of ROUNDS runs, in the calling thread and in a threading.Thread),
# as the thread's CPU time (time.thread_time): this 2-core VM's steal and
# the other runners' load made wall-clock pairs disagree by 2x.
import json
import statistics
import threading
import time

ROUNDS = 30
WORKLOADS = {
    "py_loop": ("s = 0\nfor i in range(200000):\n    s += i", ""),
    "c_loop": ("sum(range(200000))", ""),
    "groupby": ("df.groupby('k').v.sum()",
                "import numpy as np, pandas as pd\n"
                "df = pd.DataFrame({'k': np.arange(200000) % 100, "
                "'v': np.arange(200000.0)})"),
}


def _time(stmt, setup):
    ns = {}
    exec(setup, ns)
    code = compile(stmt, "<bench>", "exec")
    exec(code, ns)                  # warm
    ts = []
    for _ in range(ROUNDS):
        t0 = time.thread_time()
        exec(code, ns)
        ts.append(time.thread_time() - t0)
    return statistics.median(ts) * 1000.0


def _in_thread(stmt, setup):
    out = []
    t = threading.Thread(target=lambda: out.append(_time(stmt, setup)))
    t.start()
    t.join()
    return out[0]


_res = {name: {"main": _time(*w), "thread": _in_thread(*w)}
        for name, w in WORKLOADS.items()}
print(json.dumps(_res))

#!/usr/bin/python3
"""bench/checkpoint.py PORT STATE_DIR -- what durable sessions cost, on the
shipped nginx.conf (bench/checkpoint.sh starts it).

A session holds a 138 000-row DataFrame and a fitted scikit-learn model.
Measured, each the median of a few rounds:
- the checkpoint: its size on disk, and its time, seen as the wait of a
  neighbour's trivial cell sent right behind the building cell on the same
  worker (the checkpoint runs as one task between them: that wait is the
  bounded slice a queued cell can see), as a ratio to the same neighbour
  call on an idle worker;
- the restore: the first call after kill -9 of the session's worker, as a
  ratio to the same call on a live session.
"""

import hashlib
import json
import os
import signal
import statistics
import sys
import time
import urllib.request

PORT = int(sys.argv[1])
STATE = sys.argv[2]
BASE = "http://127.0.0.1:%d" % PORT

BUILD = """
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(0)
df = pd.DataFrame({"a": rng.normal(size=138000), "b": rng.integers(0, 9, 138000),
                   "c": rng.normal(size=138000), "d": rng.choice(["x", "y", "z"], 138000),
                   "y": rng.integers(0, 2, 138000)})
model = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0)
model.fit(df[["a", "b", "c"]].head(20000), df["y"].head(20000))
gen = %d
"""


def call(code, sid):
    body = json.dumps({"code": code, "session_id": sid}).encode()
    req = urllib.request.Request(BASE + "/execute", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        data = json.loads(r.read())
        worker = r.headers.get("X-Pyexec-Worker", "")
    return time.perf_counter() - t0, data, worker


def on_worker(w, tag):
    for i in range(1000):
        sid = "%s-%d" % (tag, i)
        _, _, got = call("1", sid)
        if got.split("/")[0] == w:
            return sid
    raise SystemExit("no id on worker %s" % w)


def ckpt(sid):
    return os.path.join(STATE, hashlib.md5(sid.encode()).hexdigest() + ".ckpt")


def wait_quiet(sid, worker):
    """until the session's checkpoint is written (its size stops moving)"""
    last = -1
    for _ in range(600):
        try:
            n = os.path.getsize(ckpt(sid))
        except OSError:
            n = -1
        if n > 0 and n == last:
            return n
        last = n
        time.sleep(0.05)
    return last


_, data, worker = call("1", "probe")
w = worker.split("/")[0]
sid = on_worker(w, "big")
nb = on_worker(w, "neighbour")

idle, behind, sizes, restore, live = [], [], [], [], []
for rnd in range(3):
    # the neighbour on an idle worker
    for _ in range(3):
        idle.append(call("6 * 7", nb)[0])
    # the building cell, then the neighbour right behind its checkpoint
    t, d, _ = call(BUILD % rnd, sid)
    if not d.get("success"):
        raise SystemExit("build failed: %s" % d.get("error"))
    behind.append(call("6 * 7", nb)[0])
    sizes.append(wait_quiet(sid, w))
    # a live call, then the restore after kill -9
    live.append(call("len(df), gen", sid)[0])
    _, _, worker = call("1", sid)
    os.kill(int(worker.split("/")[1]), signal.SIGKILL)
    for _ in range(400):
        try:
            t, d, _ = call("len(df), gen", sid)
        except Exception:
            time.sleep(0.05)
            continue
        if d.get("restored"):
            restore.append(t)
            break
        time.sleep(0.05)
    else:
        raise SystemExit("never restored")
    nb = on_worker(w, "neighbour%d" % rnd)

m = statistics.median
print("checkpoint size of the session (138 000-row DataFrame + fitted "
      "RandomForest): %.1f MB" % (m(sizes) / 1e6))
print("neighbour's cell on an idle worker: %.1f ms; right behind the "
      "checkpoint: %.1f ms (the bounded slice: one session's checkpoint, "
      "%.0f ms); ratio %.1f" % (m(idle) * 1e3, m(behind) * 1e3,
                                (m(behind) - m(idle)) * 1e3,
                                m(behind) / m(idle)))
print("first call after kill -9 (restore): %.1f ms; a live call: %.1f ms; "
      "ratio %.1f" % (m(restore) * 1e3, m(live) * 1e3,
                       m(restore) / m(live)))

#!/usr/bin/python3
"""bench/fleet.py -- many agents at once (bench/fleet.sh starts the servers).

  fleet.py --pyexec PORT --reference PORT --data DIR [--agents 8]
           [--rounds 2] [--think 0.5] [--pids-pyexec PID] [--pids-ref PID]

N agents (threads), each a DABstep-like trace of notebook cells on a
138 000-row synthetic payments CSV -- read, head, groupby, describe,
pivot, a plot, filters -- and one CPU-bound cell (~1.5 s of pure Python),
with think time between cells (uniform 0 to 2x --think seconds: the
model).  The same trace runs, one target after the other, against:
  pyexec     the shipped nginx.conf (one session per agent, minted by it)
  jupyter    one Jupyter kernel per agent (Debian's ipykernel through
             jupyter_client), as a notebook server would run them
  reference  the replaced FastAPI service (../shared/bench/seedref)
Reports per target: wall time, short-cell latency p50/p95/max (every
cell but the CPU one, as the agent sees it), failures, peak memory of
the target's processes (the sum of their PSS, sampled every 100 ms: pages
shared between processes count once); then the goals: short-cell
p50 and p95 no worse than Jupyter's, peak RSS at most half of Jupyter's,
no failures.  Exit status 1 when a goal is missed.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

import psutil

ROWS = 138000


def make_csv(path):
    if os.path.exists(path):
        return
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(7)
    df = pd.DataFrame({
        "psp_reference": np.arange(ROWS) + 10**10,
        "merchant": rng.choice(["Crossfit_Hanna", "Belles_cookbook_store",
                                "Golfclub_Baron_Friso", "Martinis_Fine_Steakhouse",
                                "Rafa_AI"], ROWS),
        "card_scheme": rng.choice(["GlobalCard", "NexPay", "SwiftCharge",
                                   "TransactPlus"], ROWS),
        "year": 2023,
        "day_of_year": rng.integers(1, 366, ROWS),
        "is_credit": rng.integers(0, 2, ROWS).astype(bool),
        "eur_amount": rng.gamma(2.0, 45.0, ROWS).round(2),
        "ip_country": rng.choice(["NL", "BE", "IT", "FR", "ES", "SE", "GR",
                                  "LU"], ROWS),
        "has_fraudulent_dispute": rng.random(ROWS) < 0.08,
        "aci": rng.choice(list("ABCDEFG"), ROWS),
    })
    df.to_csv(path + ".tmp", index=False)
    os.rename(path + ".tmp", path)


def cpu_cell():
    """~1.5 s of pure Python in /usr/bin/python3.11 here, calibrated."""
    n = 200000
    while True:
        t0 = time.perf_counter()
        s = 0
        for i in range(n):
            s += i * i
        dt = time.perf_counter() - t0
        if dt > 0.2:
            break
        n *= 2
    n = int(n * 1.5 / dt)
    return "s = 0\nfor i in range(%d):\n    s += i * i\ns %% 1000" % n


def trace(csv, cpu):
    return [
        ("read", "import pandas as pd\ndf = pd.read_csv(%r)\ndf.shape" % csv),
        ("head", "print(df.head())"),
        ("columns", "list(df.columns)"),
        ("groupby", "print(df.groupby('merchant')['eur_amount'].sum()"
                    ".sort_values())"),
        ("describe", "print(df.describe())"),
        ("pivot", "print(df.pivot_table(index='card_scheme', "
                  "columns='is_credit', values='eur_amount', aggfunc='mean'))"),
        ("fraud", "print(df.groupby('ip_country')['has_fraudulent_dispute']"
                  ".mean().round(4))"),
        ("plot", "import io\nimport matplotlib\nmatplotlib.use('Agg')\n"
                 "import matplotlib.pyplot as plt\n"
                 "fig, ax = plt.subplots()\n"
                 "df['eur_amount'].plot.hist(bins=40, ax=ax)\n"
                 "buf = io.BytesIO()\nfig.savefig(buf, format='png')\n"
                 "plt.close(fig)\nlen(buf.getvalue()) > 1000"),
        ("cpu", cpu),
        ("filter", "print(df[(df.eur_amount > 100) & df.is_credit].shape)"),
        ("nunique", "print(df.merchant.nunique(), df.aci.nunique())"),
        ("top", "print(df.groupby(['card_scheme', 'merchant']).size()"
                ".sort_values().tail(3))"),
    ]


# --- targets: run(cell) -> ok ------------------------------------------------

class HttpAgent:
    def __init__(self, port, mint):
        self.port, self.sid = port, None
        self.mint = mint
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def run(self, code):
        body = {"code": code}
        if self.sid:
            body["session_id"] = self.sid
        elif not self.mint:
            body["session_id"] = self.sid = "fleet-%d" % id(self)
        try:
            self.conn.request("POST", "/execute", json.dumps(body),
                              {"Content-Type": "application/json"})
            r = self.conn.getresponse()
            data = json.loads(r.read())
        except (OSError, ValueError, http.client.HTTPException):
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                   timeout=300)
            return False
        if self.sid is None:
            self.sid = data.get("session_id")
        return r.status == 200 and data.get("success") is True

    def close(self):
        self.conn.close()


class KernelAgent:
    def __init__(self, km, kc):
        self.km, self.kc = km, kc

    def run(self, code):
        msg_id = self.kc.execute(code)
        ok = True
        while True:
            msg = self.kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                ok = False
            if (msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                return ok

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def start_kernels(n, cwd):
    from jupyter_client.manager import start_new_kernel
    out = [None] * n

    def one(i):
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120,
                                  cwd=cwd)
        out[i] = KernelAgent(km, kc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# --- the run -------------------------------------------------------------------

def pss(pid):
    """Proportional set size (bytes): pages shared between processes (a
    fork's copy-on-write image, nginx's workers) counted once in all."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak memory (PSS) of a process tree: the pids and their children."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = pids, 0, False

    def procs(self):
        out = set()
        for pid in self.pids():
            try:
                p = psutil.Process(pid)
                out.add(p.pid)
                out.update(c.pid for c in p.children(recursive=True))
            except psutil.Error:
                pass
        return out

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, sum(pss(p) for p in self.procs()))
            time.sleep(0.1)


def idle_workers(master):
    """(n, mean RSS MB, mean PSS MB) of the master's worker processes."""
    kids = psutil.Process(master).children()
    rss = [k.memory_info().rss for k in kids]
    pss_ = [pss(k.pid) for k in kids]
    n = max(1, len(kids))
    return len(kids), sum(rss) / n / 2**20, sum(pss_) / n / 2**20


def wait_warm(port, workers):
    """Until every pyexec worker says warm in its /status (asked through
    the front with ids that hash to each): as the kernels are started
    before the clock starts, so are the workers."""
    warm = set()
    deadline = time.time() + 300
    i = 0
    while len(warm) < workers and time.time() < deadline:
        i += 1
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/status", headers={"X-Session-Id": "warm-%d" % i})
        r = c.getresponse()
        try:
            st = json.loads(r.read())
        except ValueError:
            st = {}
        c.close()
        if st.get("warm"):
            warm.add(st.get("worker"))
        else:
            time.sleep(0.1)
    return len(warm) >= workers


def fleet(name, agents, cells, rounds, think, pids, seed):
    lat, fails = [], [0]
    lock = threading.Lock()
    sampler = Sampler(pids)
    sampler.start()

    def agent(i, a):
        rng = random.Random(seed * 100 + i)
        for _ in range(rounds):
            for kind, code in cells:
                time.sleep(rng.uniform(0, 2 * think))
                t0 = time.perf_counter()
                ok = a.run(code)
                dt = (time.perf_counter() - t0) * 1000.0
                with lock:
                    if not ok:
                        fails[0] += 1
                    if kind != "cpu":
                        lat.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=agent, args=(i, a))
               for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    sampler.stop = True
    sampler.join()
    lat.sort()
    return {"name": name, "wall_s": wall,
            "p50": statistics.median(lat),
            "p95": lat[int(len(lat) * 0.95) - 1], "max": lat[-1],
            "cells": len(lat), "fails": fails[0],
            "peak_mb": sampler.peak / 2**20}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyexec", type=int, required=True)
    ap.add_argument("--reference", type=int)
    ap.add_argument("--data", required=True)
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--think", type=float, default=0.5)
    ap.add_argument("--pids-pyexec", type=int, required=True)
    ap.add_argument("--pids-ref", type=int)
    ap.add_argument("--workers", type=int, default=2)
    o = ap.parse_args()

    csv = os.path.join(o.data, "payments.csv")
    make_csv(csv)
    cells = trace(csv, cpu_cell())
    results = []

    if not wait_warm(o.pyexec, o.workers):
        print("pyexec's workers did not warm up", file=sys.stderr)
        return 1
    idle = idle_workers(o.pids_pyexec)
    agents = [HttpAgent(o.pyexec, True) for _ in range(o.agents)]
    results.append(fleet("pyexec", agents, cells, o.rounds, o.think,
                         lambda: [o.pids_pyexec], 1))
    for a in agents:
        a.close()

    kernels = start_kernels(o.agents, o.data)
    kpids = [k.km.provisioner.process.pid for k in kernels]
    results.append(fleet("jupyter", kernels, cells, o.rounds, o.think,
                         lambda: kpids, 1))
    for k in kernels:
        k.close()

    if o.reference:
        agents = [HttpAgent(o.reference, False) for _ in range(o.agents)]
        results.append(fleet("reference", agents, cells, o.rounds, o.think,
                             lambda: [o.pids_ref], 1))

    jup = results[1]
    print("idle warm worker (mean of %d, before the run): RSS %.0f MB, "
          "PSS %.0f MB" % idle)
    print("%-10s %8s %8s %8s %9s %6s %6s %8s %8s %8s" % (
        "target", "wall_s", "p50_ms", "p95_ms", "max_ms", "cells", "fails",
        "peak_mb", "p50/jup", "mem/jup"))
    for r in results:
        print("%-10s %8.1f %8.1f %8.1f %9.1f %6d %6d %8.0f %7.2fx %7.2fx" % (
            r["name"], r["wall_s"], r["p50"], r["p95"], r["max"], r["cells"],
            r["fails"], r["peak_mb"], r["p50"] / jup["p50"],
            r["peak_mb"] / jup["peak_mb"]))
    py = results[0]
    goals = [("short-cell p50 <= Jupyter's", py["p50"] <= jup["p50"]),
             ("short-cell p95 <= Jupyter's", py["p95"] <= jup["p95"]),
             ("peak RSS <= half of Jupyter's",
              py["peak_mb"] <= 0.5 * jup["peak_mb"]),
             ("no failures", py["fails"] == 0)]
    for what, ok in goals:
        print("%s %s" % ("goal met:   " if ok else "GOAL MISSED:", what))
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())

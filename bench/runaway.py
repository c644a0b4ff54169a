#!/usr/bin/python3
"""bench/runaway.py PORT PLAIN_PORT -- runaway cells on the shipped
nginx.conf (bench/runaway.sh starts it with pyexec_kill_grace 3s, and a
plain nginx answering /health with `return 200` on PLAIN_PORT).

While an open-loop /health probe runs (its own process, one keep-alive
connection, a GET every 2 ms, as bench/probe.py), each phase runs on
worker 0:
- plain: plain nginx's /health, the machine's floor (the baseline);
- idle: pyexec doing nothing;
- swallow: a cell that catches BaseException in a loop, timeout 1 s
  (stopped by the ladder's trace stage);
- interrupt: time.sleep(60), interrupted 0.5 s in; the time from the
  interrupt's answer to the cell's answer;
- c-loop: sum(range(4 * 10**10)), timeout 1 s: the worker is recycled,
  a neighbour's request queued behind it gets 503 + Retry-After, then the
  neighbour runs again on the new worker from its checkpoint.
Prints /health p50/p99/max per phase and p99 as a ratio to plain nginx's,
the interrupt latency and each phase's outcome.  Exits 1 when a goal is
missed: /health p99 under 2 ms in every phase (or, on a machine where
plain nginx itself is slower than that, within 1.5x of plain nginx's p99
in the same run), the interrupt answered within 1 s, every outcome as
expected.
"""

import http.client
import json
import subprocess
import sys
import threading
import time

PORT = int(sys.argv[1])
PLAIN = int(sys.argv[2])


def request(method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body else {}
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        doc = json.loads(data)
    except ValueError:
        doc = {"raw": data[:200].decode("utf-8", "replace")}
    return r.status, doc, dict((k.lower(), v) for k, v in r.getheaders())


def cell(sid, code, timeout=None):
    body = {"code": code, "session_id": sid}
    if timeout:
        body["timeout"] = timeout
    return request("POST", "/execute", body)


def on_worker(w, tag):
    for i in range(500):
        sid = "%s-%d" % (tag, i)
        st, _, h = request("GET", "/sessions/" + sid)
        if h.get("x-pyexec-worker", "").split("/")[0] == str(w):
            return sid
        if st == 503:
            time.sleep(0.05)
    raise SystemExit("worker %d never answered" % w)


# the probe runs in its own process (the GIL of this one would add its
# switch interval to the latencies): GETs until its stdin closes, then
# prints "p50 p99 max n errors"
PROBE = r"""
import http.client, sys, threading, time
port, done, lat, errors, conn = int(sys.argv[1]), [], [], 0, None
threading.Thread(target=lambda: (sys.stdin.read(), done.append(1)),
                 daemon=True).start()
while not done:
    t0 = time.perf_counter()
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        r = conn.getresponse()
        if r.status != 200 or b"healthy" not in r.read():
            errors += 1
    except (OSError, http.client.HTTPException):
        errors += 1
        conn = None
    lat.append((time.perf_counter() - t0) * 1000.0)
    time.sleep(0.002)
lat.sort()
print(lat[len(lat) // 2], lat[max(0, int(len(lat) * 0.99) - 1)], lat[-1],
      len(lat), errors)
"""


def phase(name, work, port=PORT):
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    time.sleep(0.2)
    outcome = work()
    out, _ = probe.communicate("")
    p50, p99, mx, n, err = out.split()
    return name, (float(p50), float(p99), float(mx), int(n), int(err)), \
        outcome


def idle():
    time.sleep(3)
    return "ok", True


SWALLOW = ("while True:\n    try:\n        while True:\n            pass\n"
           "    except BaseException:\n        pass")


def swallow(sid):
    def run():
        st, r, _ = cell(sid, SWALLOW, timeout=1)
        t = r.get("termination", {})
        return "%s %s/%s" % (st, t.get("reason"), t.get("stage")), \
            st == 200 and t == {"reason": "timeout", "stage": "trace"}
    return run


LATENCY = {}


def interrupt(sid):
    def run():
        out = {}
        th = threading.Thread(target=lambda: out.update(
            r=cell(sid, "import time\ntime.sleep(60)", timeout=120),
            at=time.perf_counter()))
        th.start()
        time.sleep(0.5)
        _, doc, _ = request("POST", "/sessions/%s/interrupt" % sid)
        asked = time.perf_counter()
        th.join()
        LATENCY["interrupt"] = (out["at"] - asked) * 1000.0
        st, r, _ = out["r"]
        t = r.get("termination", {})
        return "%s %s/%s interrupted=%s" % (st, t.get("reason"),
                                            t.get("stage"),
                                            doc.get("interrupted")), \
            doc.get("interrupted") is True and t.get("reason") == "interrupted"
    return run


def c_loop(sid, neighbour):
    def run():
        cell(neighbour, "state = 42")
        time.sleep(0.5)                 # its checkpoint, once idle
        out = {}
        th = threading.Thread(target=lambda: out.update(
            r=cell(sid, "sum(range(4 * 10**10))", timeout=1)))
        th.start()
        time.sleep(0.3)
        qst, qr, qh = cell(neighbour, "state + 1")
        th.join()
        st = 0
        for _ in range(100):
            st, r, _ = cell(neighbour, "state + 1")
            if st == 200:
                break
            time.sleep(0.1)
        stuck = out["r"][1].get("termination", {})
        return ("stuck %s %s/%s, queued %s retry-after=%s %s, then %s %s" % (
            out["r"][0], stuck.get("reason"), stuck.get("stage"), qst,
            qh.get("retry-after"), qr.get("termination", {}).get("reason"),
            st, r.get("result"))), \
            (out["r"][0] == 504 and qst == 503 and qh.get("retry-after")
             and st == 200 and r.get("result") == 43)
    return run


def main():
    sid = on_worker(0, "runaway")
    neighbour = on_worker(0, "neighbour")
    cell(sid, "x = 1")
    phases = [phase("plain", idle, PLAIN),
              phase("idle", idle),
              phase("swallow", swallow(sid)),
              phase("interrupt", interrupt(sid)),
              phase("c-loop", c_loop(sid, neighbour))]
    base = phases[0][1][1] or 1e-9
    bound = max(2.0, 1.5 * base)
    ok = True
    print("%-10s %8s %8s %8s %7s %6s %9s  %s" % (
        "phase", "p50_ms", "p99_ms", "max_ms", "n", "errors", "p99/plain",
        "outcome"))
    for name, (p50, p99, mx, n, err), (text, good) in phases:
        print("%-10s %8.3f %8.3f %8.3f %7d %6d %8.2fx  %s%s" % (
            name, p50, p99, mx, n, err, p99 / base, text,
            "" if good else "  <- unexpected"))
        ok = ok and good and p99 < bound
    lat = LATENCY.get("interrupt", 1e9)
    print("interrupt of time.sleep(60): answered %.1f ms after the interrupt"
          % lat)
    ok = ok and lat < 1000.0
    print("goals (/health p99 < %.2f ms in every phase: %s; interrupt < 1 s;"
          " outcomes): %s" % (bound, "2 ms" if bound == 2.0 else
                              "1.5x plain nginx, slower than 2 ms here",
                              "met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""soak.py -- a long run of mixed requests against a running pyexec; every
answer is checked, and the resident memory of all nginx processes must not
grow by SOAK_RSS_PCT (5%) between the end of the warm-up (the first 10% of
the requests) and the end.  Exit 0 only when no answer was wrong and the
memory held.

  soak.py --port 8123 --master PID [--requests 1000000] [--conns 4]

The mix, per connection (one thread each, keep-alive):
  30% GET /health                          {"status":"healthy"}
  30% a counter in one of the thread's 40 sessions, checked exactly
  10% print() in such a session            stdout checked
  10% a new session (front-minted), then DELETE /sessions/{id}
   8% GET /sessions/{id} of a live session its execution_count checked
   6% malformed JSON                       422 with a detail list
   6% an unknown path                      404 JSON
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time


def rss_kb(master):
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(d))
            except OSError:
                pass
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total, len(pids)


class Worker(threading.Thread):
    def __init__(self, n, args, quota, counters):
        super().__init__(daemon=True)
        self.n, self.args, self.quota = n, args, quota
        self.done = 0
        self.errors = []
        self.rng = random.Random(n)
        self.sessions = ["soak-%d-%d" % (n, i) for i in range(40)]
        self.counts = {s: 0 for s in self.sessions}
        self.conn = None

    def req(self, method, path, body=None):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.args.port, timeout=30)
                headers = {"Content-Type": "application/json"} if body else {}
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.HTTPException, OSError) as e:
                self.conn = None
                if attempt:
                    return 0, str(e).encode()

    def bad(self, what, status, data):
        if len(self.errors) < 20:
            self.errors.append("%s: %s %r" % (what, status, data[:200]))

    def execute(self, code, sid=None):
        body = {"code": code}
        if sid is not None:
            body["session_id"] = sid
        st, data = self.req("POST", "/execute", json.dumps(body))
        try:
            return st, json.loads(data), data
        except ValueError:
            return st, None, data

    def run(self):
        while self.done < self.quota:
            r = self.rng.random()
            if r < 0.30:
                st, data = self.req("GET", "/health")
                if st != 200 or data != b'{"status":"healthy"}':
                    self.bad("health", st, data)
                self.done += 1
            elif r < 0.60:
                s = self.rng.choice(self.sessions)
                st, j, data = self.execute("n = globals().get('n', 0) + 1\nn", s)
                self.counts[s] += 1
                if st != 200 or not j or j["result"] != self.counts[s]:
                    self.bad("counter %s" % s, st, data)
                    self.counts[s] = j["result"] if j and isinstance(j.get("result"), int) else 0
                self.done += 1
            elif r < 0.70:
                s = self.rng.choice(self.sessions)
                tag = "%d-%d" % (self.n, self.done)
                st, j, data = self.execute("print('tag', %r)" % tag, s)
                self.counts[s] += 0
                if st != 200 or not j or j["stdout"] != "tag %s\n" % tag:
                    self.bad("print", st, data)
                self.done += 1
            elif r < 0.80:
                st, j, data = self.execute("x = list(range(100))\nlen(x)")
                if st != 200 or not j or j["result"] != 100:
                    self.bad("new session", st, data)
                else:
                    st, data = self.req("DELETE", "/sessions/" + j["session_id"])
                    if st != 200:
                        self.bad("delete", st, data)
                self.done += 2
            elif r < 0.88:
                s = self.rng.choice(self.sessions)
                st, data = self.req("GET", "/sessions/" + s)
                if self.counts[s] == 0 and st == 404:
                    pass
                elif st != 200 or b'"variables"' not in data:
                    self.bad("session info", st, data)
                self.done += 1
            elif r < 0.94:
                st, data = self.req("POST", "/execute", '{"code": "1",')
                if st != 422 or b'"detail":[' not in data:
                    self.bad("malformed", st, data)
                self.done += 1
            else:
                st, data = self.req("GET", "/no/such/path")
                if st != 404 or b'"detail"' not in data:
                    self.bad("404", st, data)
                self.done += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--master", type=int, required=True)
    ap.add_argument("--requests", type=int, default=1000000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--rss-pct", type=float,
                    default=float(os.environ.get("SOAK_RSS_PCT", 5)))
    args = ap.parse_args()

    quota = args.requests // args.conns
    workers = [Worker(i, args, quota, None) for i in range(args.conns)]
    t0 = time.time()
    for w in workers:
        w.start()

    base = None
    samples = []
    while any(w.is_alive() for w in workers):
        time.sleep(2)
        done = sum(w.done for w in workers)
        kb, nproc = rss_kb(args.master)
        samples.append((done, kb))
        if base is None and done >= args.requests * 0.10:
            base = kb
            print("soak: warm at %d requests: RSS %.1f MB in %d processes"
                  % (done, kb / 1024, nproc), flush=True)
        if len(samples) % 15 == 0:
            print("soak: %d requests, %.0f/s, RSS %.1f MB"
                  % (done, done / (time.time() - t0), kb / 1024), flush=True)
    for w in workers:
        w.join()

    took = time.time() - t0
    done = sum(w.done for w in workers)
    end, nproc = rss_kb(args.master)
    errors = [e for w in workers for e in w.errors]
    nerr = sum(len(w.errors) for w in workers)
    base = base or samples[0][1]
    growth = (end - base) * 100.0 / base
    print("soak: %d requests in %.0f s (%.0f/s), %d wrong answers"
          % (done, took, done / took, nerr))
    print("soak: RSS %.1f MB after warm-up, %.1f MB at the end: %+.2f%% "
          "(limit %.0f%%), %d processes"
          % (base / 1024, end / 1024, growth, args.rss_pct, nproc))
    for e in errors[:20]:
        print("soak: wrong: " + e)
    ok = nerr == 0 and growth < args.rss_pct and done >= args.requests
    print("soak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

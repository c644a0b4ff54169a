#!/usr/bin/python3
"""idle_sessions.py PORT PID N -- RSS per idle session: N sessions made by
POST /execute {"code": "None", "session_id": "idle<i>"} over one keep-alive
connection; prints "sessions=N bytes_per_session=B rss_before_mib=..
rss_after_mib=.. bad=K".  PID is the process holding the sessions (the
worker, or the uvicorn process); its RSS (psutil) before and after."""
import http.client
import json
import sys
import time

import psutil

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
proc = psutil.Process(pid)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def post(i):
    c.request("POST", "/execute",
              json.dumps({"code": "None", "session_id": "idle%d" % i}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    return r.status == 200 and b'"success":true' in body


post(-1)                    # the first session pays for one-time costs
time.sleep(0.5)
before = proc.memory_info().rss
bad = sum(not post(i) for i in range(n))
time.sleep(0.5)
after = proc.memory_info().rss
print("sessions=%d bytes_per_session=%.0f rss_before_mib=%.1f "
      "rss_after_mib=%.1f bad=%d" % (n, (after - before) / n, before / 2**20,
                                      after / 2**20, bad))

#!/usr/bin/python3
"""probe.py URL [N] [GAP_MS] -- latency of N sequential GETs on one
keep-alive connection, GAP_MS apart (an open-loop probe, like a health
checker, unlike wrk's closed loop).  Prints "p50_ms p99_ms max_ms errors"."""
import http.client
import sys
import time
import urllib.parse

url = urllib.parse.urlsplit(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
gap = (float(sys.argv[3]) if len(sys.argv) > 3 else 2.0) / 1000.0
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
lat, errors = [], 0
for _ in range(n):
    t0 = time.perf_counter()
    try:
        conn.request("GET", url.path or "/")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or b"healthy" not in body:
            errors += 1
    except OSError:
        errors += 1
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    lat.append((time.perf_counter() - t0) * 1000.0)
    time.sleep(gap)
lat.sort()
print("%.3f %.3f %.3f %d" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1],
                             lat[-1], errors))

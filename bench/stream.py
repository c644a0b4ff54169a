#!/usr/bin/python3
"""bench/stream.py PORT ROUNDS -- a cell that prints 20 MB (20 000 lines
of 1 KB), on the shipped nginx.conf (bench/stream.sh starts it), read by
a client as fast as the bytes come, the median of ROUNDS rounds of each:

  reply    POST /execute, the whole output in one JSON reply
  stream   the same cell with "stream": true, its events (SSE) to the end
  kept     GET /executions/{id}: the finished cell's reply from the journal
  replay   GET /executions/{id}/events: the finished cell's events again

MB/s of each (the bytes of its body over the time from the request to its
last byte), and the ratios stream/reply (both run the cell) and
replay/kept (neither does).  Goals: each ratio >= 0.25 (a stream within
4x of one reply of the same output; events paced by a timer gave 0.01x);
every stream holds all 20 000 lines.  Exit status 1 when a goal is
missed.
"""

import json
import socket
import statistics
import sys
import time

PORT = int(sys.argv[1])
ROUNDS = int(sys.argv[2])
LINES = 20000
CODE = "s = 'x' * 1023\nfor i in range(%d):\n    print(s)\n'flooded'" % LINES


def request(method, path, body=None, sid="stream-bench"):
    """(status, body bytes, seconds): one request on its own connection,
    the body read to its end (Content-Length or the last chunk)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=120)
    data = json.dumps(body).encode() if body is not None else b""
    head = ("%s %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
            "X-Session-Id: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (method, path, sid, len(data)))
    t0 = time.perf_counter()
    s.sendall(head.encode() + data)
    chunks = []
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        chunks.append(d)
    dt = time.perf_counter() - t0
    s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, i = [], 0
        while i < len(body):
            j = body.index(b"\r\n", i)
            n = int(body[i:j], 16)
            if n == 0:
                break
            out.append(body[j + 2:j + 2 + n])
            i = j + 2 + n + 2
        body = b"".join(out)
    return status, body, dt


def lines_in_events(body):
    """stdout lines carried by the SSE events of body."""
    n = 0
    for block in body.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                try:
                    ev = json.loads(line[6:])
                except ValueError:
                    continue
                if isinstance(ev, dict) and isinstance(ev.get("text"), str):
                    n += ev["text"].count("\n")
    return n


def main():
    rows = {k: [] for k in ("reply", "stream", "kept", "replay")}
    complete = True
    for _ in range(ROUNDS):
        st, body, dt = request("POST", "/execute", {"code": CODE})
        r = json.loads(body)
        complete &= st == 200 and r["stdout"].count("\n") == LINES
        rows["reply"].append((len(body), dt))

        st, body, dt = request("POST", "/execute",
                               {"code": CODE, "stream": True})
        complete &= st == 200 and lines_in_events(body) == LINES
        rows["stream"].append((len(body), dt))

        eid = r["execution_id"]
        st, body, dt = request("GET", "/executions/%s" % eid)
        complete &= (st == 200
                     and json.loads(body)["stdout"].count("\n") == LINES)
        rows["kept"].append((len(body), dt))

        st, body, dt = request("GET", "/executions/%s/events" % eid)
        complete &= st == 200 and lines_in_events(body) == LINES
        rows["replay"].append((len(body), dt))

    rate = {}
    print("%-8s %10s %10s %10s" % ("read", "MB", "s", "MB/s"))
    for k, v in rows.items():
        mb = statistics.median(n for n, _ in v) / 1e6
        s = statistics.median(t for _, t in v)
        rate[k] = mb / s
        print("%-8s %10.1f %10.3f %10.1f" % (k, mb, s, rate[k]))
    goals = [("stream/reply >= 0.25 (%.2f)"
              % (rate["stream"] / rate["reply"]),
              rate["stream"] >= 0.25 * rate["reply"]),
             ("replay/kept >= 0.25 (%.2f)" % (rate["replay"] / rate["kept"]),
              rate["replay"] >= 0.25 * rate["kept"]),
             ("every stream holds all %d lines" % LINES, complete)]
    ok = True
    for name, met in goals:
        print("%s %s" % ("goal met:   " if met else "GOAL MISSED:", name))
        ok &= met
    sys.exit(0 if ok else 1)


main()

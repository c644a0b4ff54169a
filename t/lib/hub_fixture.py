#!/usr/bin/python3
"""A stand-in for the Hugging Face hub's HTTPS layout, for t/017-datasets.t.

    hub_fixture.py ROOT PORT BEHAVIOUR_JSON LOG

Serves ROOT/<owner>/<name>/<path> as dataset <owner>/<name> at revision
"main":
  GET /api/datasets/<id>/tree/main[/<prefix>]?recursive=1  the file list,
      files over 1000 bytes as LFS files (sha256), the others with their
      git blob sha1, as the hub does;
  GET /datasets/<id>/resolve/main/<path>  the bytes, honouring Range.
BEHAVIOUR_JSON is read at every request: {"cut": {"<path>": n}} sends n
bytes then drops the connection; {"corrupt": ["<path>"]} flips bytes;
{"missing": ["<path>"]} answers 404.  Every request is appended to LOG as
"METHOD PATH RANGE".
"""

import hashlib
import http.server
import json
import os
import sys
import urllib.parse

ROOT, PORT, BEHAVIOUR, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    sys.argv[4]


def behaviour():
    try:
        with open(BEHAVIOUR) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Hub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="application/json", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        with open(LOG, "a") as log:
            log.write("GET %s %s\n" % (path, self.headers.get("Range", "-")))
        b = behaviour()
        parts = path.strip("/").split("/")

        if parts[:2] == ["api", "datasets"] and len(parts) >= 6 \
                and parts[4] == "tree" and parts[5] == "main":
            repo = os.path.join(ROOT, parts[2], parts[3])
            if not os.path.isdir(repo):
                return self.send(404, b'{"error":"Repository not found"}')
            prefix = "/".join(parts[6:])
            listing = []
            for d, _, names in os.walk(repo):
                for n in sorted(names):
                    full = os.path.join(d, n)
                    rel = os.path.relpath(full, repo)
                    if prefix and not rel.startswith(prefix + "/"):
                        continue
                    data = open(full, "rb").read()
                    item = {"type": "file", "path": rel, "size": len(data),
                            "oid": hashlib.sha1(b"blob %d\0" % len(data)
                                                + data).hexdigest()}
                    if len(data) > 1000:
                        item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(),
                                       "size": len(data),
                                       "pointerSize": 132}
                    listing.append(item)
            return self.send(200, json.dumps(listing).encode())

        if parts[:1] == ["datasets"] and len(parts) >= 6 \
                and parts[3] == "resolve" and parts[4] == "main":
            rel = "/".join(parts[5:])
            full = os.path.join(ROOT, parts[1], parts[2], rel)
            if rel in b.get("missing", []) or not os.path.isfile(full):
                return self.send(404, b"Entry not found", "text/plain")
            data = open(full, "rb").read()
            if rel in b.get("corrupt", []):
                data = bytes(c ^ 1 for c in data)
            start, code, extra = 0, 200, {}
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    return self.send(416, b"", "text/plain")
                code = 206
                extra["Content-Range"] = "bytes %d-%d/%d" % (
                    start, len(data) - 1, len(data))
            body = data[start:]
            cut = b.get("cut", {}).get(rel)
            if cut is not None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            return self.send(code, body, "application/octet-stream", extra)

        return self.send(404, b'{"error":"not found"}')


class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Hub).serve_forever()

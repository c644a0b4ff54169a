#!/usr/bin/python3
"""datasets.py -- download the datasets a manifest names from the Hugging
Face hub's plain HTTPS endpoints, with nothing but Python's stdlib.

    tools/datasets.py [--manifest FILE] [--dest DIR] [NAME ...]

Each manifest line is "<repo id> [revision] [path prefix]", e.g.
"adyen/DABstep main data/context/".  For each, the hub's tree API
(/api/datasets/<id>/tree/<rev>?recursive=1) lists the files with their sizes
and hashes (sha256 for LFS files, the git blob sha1 for the others); every
file under the prefix is fetched from /datasets/<id>/resolve/<rev>/<path>
into DEST/<id>/<path>.

- Resumable: bytes arrive in <file>.part; after a cut, the next run asks
  for the rest (HTTP Range).  The final name appears only once the whole
  file is there and its hash matched: never a half-written file.
- Idempotent: a file already there with the right size and hash is left
  alone, so a second run downloads nothing.
- Errors say what and where (404, no network, disk full, hash mismatch);
  a .part that cannot be resumed (bad hash, server refused) is removed.
- HF_ENDPOINT (as the hub's own tools read it) changes the server, e.g.
  for a mirror or the tests' local fixture server; HF_TOKEN is sent as a
  bearer token when set.
"""

import argparse
import errno
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 1 << 20


class Failure(Exception):
    pass


def endpoint():
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def request(url, headers=None):
    h = {"User-Agent": "pyexec-datasets/1"}
    if os.environ.get("HF_TOKEN"):
        h["Authorization"] = "Bearer " + os.environ["HF_TOKEN"]
    h.update(headers or {})
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=h),
                                      timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise Failure("not found (404): %s" % url)
        if e.code == 416:
            raise
        raise Failure("HTTP %d from %s" % (e.code, url))
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Failure("cannot reach %s: %s" % (endpoint(), reason))


def read_manifest(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) > 3 or "/" not in parts[0]:
                raise Failure("%s:%d: expected \"<owner/name> [revision] "
                              "[path prefix]\"" % (path, n))
            entries.append((parts[0], parts[1] if len(parts) > 1 else "main",
                            parts[2] if len(parts) > 2 else ""))
    return entries


def list_files(repo, rev, prefix):
    url = "%s/api/datasets/%s/tree/%s?recursive=1" % (
        endpoint(), repo, urllib.parse.quote(rev, safe=""))
    if prefix:
        url = "%s/api/datasets/%s/tree/%s/%s?recursive=1" % (
            endpoint(), repo, urllib.parse.quote(rev, safe=""),
            urllib.parse.quote(prefix.rstrip("/")))
    with request(url) as r:
        try:
            tree = json.load(r)
        except ValueError:
            raise Failure("the file list of %s is not JSON" % repo)
    files = []
    for item in tree:
        if item.get("type") != "file" or not item.get("path", "").startswith(
                prefix):
            continue
        path = item["path"]
        if path.startswith("/") or ".." in path.split("/"):
            raise Failure("refusing the path %r listed by the server" % path)
        lfs = item.get("lfs") or {}
        files.append({
            "path": path,
            "size": lfs.get("size", item.get("size")),
            "sha256": lfs.get("oid") or lfs.get("sha256"),
            "git_sha1": None if lfs else item.get("oid"),
        })
    if not files:
        raise Failure("no files under %r in %s@%s" % (prefix, repo, rev))
    return files


def hashes_of(path):
    sha256 = hashlib.sha256()
    size = os.path.getsize(path)
    git = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            sha256.update(block)
            git.update(block)
    return size, sha256.hexdigest(), git.hexdigest()


def verify(path, meta):
    """None when the file matches what the hub says, else why not."""
    size, sha256, git_sha1 = hashes_of(path)
    if meta["size"] is not None and size != meta["size"]:
        return "size %d, expected %d" % (size, meta["size"])
    if meta["sha256"] and sha256 != meta["sha256"]:
        return "sha256 %s, expected %s" % (sha256, meta["sha256"])
    if meta["git_sha1"] and git_sha1 != meta["git_sha1"]:
        return "git sha1 %s, expected %s" % (git_sha1, meta["git_sha1"])
    return None


class Progress:
    def __init__(self, name, total, done):
        self.name, self.total, self.done = name, total, done
        self.tty = sys.stderr.isatty()

    def add(self, n):
        self.done += n
        if self.tty and self.total:
            width = 30
            full = int(width * self.done / self.total)
            sys.stderr.write("\r  %-40.40s [%s%s] %5.1f%%" % (
                self.name, "#" * full, "." * (width - full),
                100.0 * self.done / self.total))
            sys.stderr.flush()

    def end(self):
        if self.tty:
            sys.stderr.write("\n")


def fetch(repo, rev, meta, dest):
    target = os.path.join(dest, repo, meta["path"])
    part = target + ".part"
    os.makedirs(os.path.dirname(target), exist_ok=True)

    if os.path.exists(target) and verify(target, meta) is None:
        return False

    have = os.path.getsize(part) if os.path.exists(part) else 0
    if meta["size"] is not None and have > meta["size"]:
        os.remove(part)
        have = 0

    url = "%s/datasets/%s/resolve/%s/%s" % (
        endpoint(), repo, urllib.parse.quote(rev, safe=""),
        urllib.parse.quote(meta["path"]))
    headers = {"Range": "bytes=%d-" % have} if have else {}

    try:
        r = request(url, headers)
    except urllib.error.HTTPError:          # 416: nothing left to send
        r = None

    progress = Progress(meta["path"], meta["size"], have)
    try:
        if r is not None:
            with r:
                if have and r.status != 206:
                    have = 0                # the server starts over
                    progress.done = 0
                with open(part, "ab" if have else "wb") as out:
                    while True:
                        try:
                            block = r.read(CHUNK)
                        except (OSError, ValueError,
                                http.client.HTTPException) as e:
                            raise Failure("connection cut while fetching %s "
                                          "(%s); run again to resume"
                                          % (meta["path"], e))
                        if not block:
                            break
                        out.write(block)
                        progress.add(len(block))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            os.remove(part)
            raise Failure("disk full writing %s" % part)
        raise
    finally:
        progress.end()

    if meta["size"] is not None and os.path.getsize(part) < meta["size"]:
        raise Failure("connection cut while fetching %s (%d of %d bytes); "
                      "run again to resume"
                      % (meta["path"], os.path.getsize(part), meta["size"]))

    why = verify(part, meta)
    if why:
        os.remove(part)
        raise Failure("%s: checksum mismatch (%s); the download was removed"
                      % (meta["path"], why))

    os.replace(part, target)
    return True


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest",
                    default=os.path.join(here, "..", "datasets.manifest"))
    ap.add_argument("--dest", default=os.environ.get("DOWNLOAD_DIR",
                                                     "downloaded_data"))
    ap.add_argument("names", nargs="*", help="only these repo ids")
    args = ap.parse_args()

    try:
        entries = read_manifest(args.manifest)
        if args.names:
            entries = [e for e in entries if e[0] in args.names]
            missing = set(args.names) - {e[0] for e in entries}
            if missing:
                raise Failure("not in %s: %s" % (args.manifest,
                                                 ", ".join(sorted(missing))))
        got = kept = 0
        for repo, rev, prefix in entries:
            for meta in list_files(repo, rev, prefix):
                if fetch(repo, rev, meta, args.dest):
                    got += 1
                    print("datasets: %s/%s" % (repo, meta["path"]))
                else:
                    kept += 1
        print("datasets: %d downloaded, %d already there (in %s)"
              % (got, kept, args.dest))
    except Failure as e:
        print("datasets: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

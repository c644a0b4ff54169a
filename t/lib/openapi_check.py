#!/usr/bin/python3
"""openapi_check.py BASE_URL SPEC -- walk openapi.json against a running
pyexec: every documented operation is called (with the spec's examples),
must answer a status the spec documents for it, and a JSON answer must
validate against that response's schema.  Some error cases are called too.
Prints TAP-ish lines "ok ..."/"not ok ..."; exits 1 on any failure."""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import jsonschema

BASE, SPEC = sys.argv[1].rstrip("/"), json.load(open(sys.argv[2]))
failures = 0


def say(ok, what):
    global failures
    failures += not ok
    print("%s %s" % ("ok" if ok else "not ok", what))


def call(method, path, body=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else \
        json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def multipart(name, data):
    b = b"----pyexec-openapi"
    return (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"files\"; "
            b"filename=\"" + name + b"\"\r\n\r\n" + data + b"\r\n--" + b
            + b"--\r\n"), "multipart/form-data; boundary=" + b.decode()


# the component schemas are valid JSON Schema 2020-12, every $ref resolves
validator_cls = jsonschema.Draft202012Validator
for name, schema in SPEC["components"]["schemas"].items():
    try:
        validator_cls.check_schema(schema)
        say(True, "schema %s is valid JSON Schema" % name)
    except jsonschema.SchemaError as e:
        say(False, "schema %s: %s" % (name, e.message))
say(SPEC["openapi"] == "3.1.0", "OpenAPI 3.1")
resolver = jsonschema.RefResolver.from_schema(SPEC)


def check(op_path, method, status, ctype, body, why):
    responses = SPEC["paths"][op_path][method]["responses"]
    say(str(status) in responses, "%s %s (%s) answers a documented status: %d"
        % (method.upper(), op_path, why, status))
    if str(status) not in responses:
        return
    content = responses[str(status)].get("content", {})
    if "application/json" in content and ctype.startswith("application/json"):
        schema = content["application/json"]["schema"]
        try:
            validator_cls(schema, resolver=resolver).validate(json.loads(body))
            say(True, "%s %s %d: the JSON matches the schema" % (
                method.upper(), op_path, status))
        except (ValueError, jsonschema.ValidationError) as e:
            say(False, "%s %s %d: %s" % (method.upper(), op_path, status,
                                         getattr(e, "message", e)))
    elif content:
        say(any(ctype.startswith(c) or c == "application/octet-stream"
                for c in content), "%s %s %d: a documented content type (%s)"
            % (method.upper(), op_path, status, ctype))


def example_body(op):
    rb = op.get("requestBody", {}).get("content", {})
    return rb.get("application/json", {}).get("example")


# the calls, in an order where each finds what it needs
up_body, up_type = multipart(b"sales.csv", b"units\n3\n4\n")
calls = [
    ("/health", "get", "/health", None, None, "example"),
    ("/status", "get", "/status", None, None, "example"),
    ("/metrics", "get", "/metrics", None, None, "example"),
    ("/openapi.json", "get", "/openapi.json", None, None, "example"),
    ("/upload", "post", "/upload", up_body, up_type, "example"),
    ("/files", "get", "/files", None, None, "example"),
    ("/files/{path}", "get", "/files/sales.csv", None, None, "example"),
    ("/execute", "post", "/execute",
     example_body(SPEC["paths"]["/execute"]["post"]), None, "example"),
    ("/sessions", "post", "/sessions", b"", None, "example"),
    ("/sessions", "get", "/sessions", None, None, "example"),
    ("/sessions/{session_id}", "get", "/sessions/demo", None, None,
     "example"),
    ("/execute", "post", "/execute", {"code": "y = 1", "session_id": "demo"},
     None, "a second cell"),
    ("/sessions/{session_id}/rollback", "post", "/sessions/demo/rollback",
     b"", None, "example"),
    ("/sessions/{session_id}/rollback", "post", "/sessions/demo/rollback",
     b"", None, "nothing to undo"),
    ("/sessions/{session_id}/interrupt", "post", "/sessions/demo/interrupt",
     b"", None, "example"),
    ("/sessions/{session_id}/interrupt", "post",
     "/sessions/no-such/interrupt", b"", None, "unknown"),
    ("/execute", "post", "/execute",
     {"code": "print(1)", "session_id": "demo", "stream": True}, None,
     "stream"),
    ("/execute", "post", "/execute",
     {"code": "z = 3", "session_id": "demo", "async": True}, None, "async"),
    ("/executions/{execution_id}", "get", "EXEC", None, None, "example"),
    ("/executions/{execution_id}/events", "get", "EXEC/events", None, None,
     "example"),
    ("/executions/{execution_id}", "get", "/executions/0123456789abcdef.demo",
     None, None, "unknown"),
    ("/sessions/{session_id}", "delete", "/sessions/demo", None, None,
     "example"),
    # errors
    ("/execute", "post", "/execute", {"session_id": "x"}, None, "no code"),
    ("/execute", "post", "/execute", b"{", None, "bad JSON"),
    ("/execute", "post", "/execute",
     {"code": "while True: pass", "timeout": 0.2}, None, "timeout"),
    ("/execute", "post", "/execute",
     {"code": "import matplotlib.pyplot as plt\nplt.plot([1])"}, None,
     "figure"),
    ("/execute", "post", "/execute",
     {"code": "import pandas as pd\ndisplay(pd.DataFrame({'a': [1]}), 7)\n"
              "import matplotlib.pyplot as plt\nplt.plot([1])"}, None,
     "display"),
    ("/execute", "post", "/execute", None, None, "wrong method", "GET"),
    ("/sessions/{session_id}", "get", "/sessions/no-such", None, None,
     "unknown"),
    ("/sessions/{session_id}", "delete", "/sessions/no-such", None, None,
     "unknown"),
    ("/upload", "post", "/upload", {"files": []}, None, "not multipart"),
    ("/upload", "post", "/upload", b"--b\r\n", "multipart/form-data; "
     "boundary=b", "truncated"),
    ("/files/{path}", "get", "/files/missing.csv", None, None, "missing"),
]

covered = set()
execution = None        # the last reply's execution_id, for EXEC urls
for op_path, method, url, body, ctype, why, *actual in calls:
    m = actual[0] if actual else method.upper()
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if url.startswith("EXEC"):
        url = "/executions/" + urllib.parse.quote(execution, safe="") + url[4:]
    status, rtype, rbody = call(m, url, body, ctype or "application/json")
    if rtype.startswith("application/json"):
        try:
            execution = json.loads(rbody).get("execution_id") or execution
        except (ValueError, AttributeError):
            pass
    check(op_path, method, status, rtype, rbody, why)
    if why == "example":
        covered.add((op_path, method))
        say(200 <= status < 300, "%s %s example succeeds" % (m, op_path))

for p, ops in SPEC["paths"].items():
    for method in ops:
        say((p, method) in covered, "%s %s is exercised" % (method.upper(), p))

sys.exit(1 if failures else 0)

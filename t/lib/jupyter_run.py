#!/usr/bin/python3.11
"""jupyter_run.py < CODE -- run one cell in a real Jupyter kernel (Debian's
ipykernel, through jupyter_client) and print, as JSON, what a front end
gets: {"stdout": str, "stderr": str, "outputs": [{mime: data}, ...],
"error": "Name: message" | null}; display_data bundles in order
(execute_result is left out: pyexec answers it as `result`)."""
import json
import sys

from jupyter_client.manager import start_new_kernel

code = sys.stdin.read()
km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
res = {"stdout": "", "stderr": "", "outputs": [], "error": None}
try:
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            res[content["name"]] += content["text"]
        elif kind == "display_data":
            res["outputs"].append(content["data"])
        elif kind == "error":
            res["error"] = "%s: %s" % (content["ename"], content["evalue"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print(json.dumps(res))

"""A minimal admission webhook for the control-plane tests: labels every pod it sees with
``echo-webhook: <host>`` through a JSONPatch. Run: webhook_echo.py HOST PORT CERT KEY NAME."""

import base64
import json
import sys

from admission_server import admission_server  # beside this script


def answer(request: dict) -> dict:
    pod = request["object"]
    ops = [] if pod["metadata"].get("labels") else [{"op": "add", "path": "/metadata/labels", "value": {}}]
    ops.append({"op": "add", "path": "/metadata/labels/echo-webhook", "value": sys.argv[5]})
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


server = admission_server(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], answer)
print("serving", flush=True)
server.serve_forever()

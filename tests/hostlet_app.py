"""A small container program for the hostlet's tests: an HTTP server that reports what a
container sees (its arguments, environment, and its pod through its own credential).

GET /healthz  liveness: 200 until POST /sick
GET /ready    readiness: 200
GET /whoami   JSON: argv, the environment variables named in --show, hostname and its address
GET /self     JSON: status code and body of GET on its own pod, and of a list of Secrets, using
              $KUBECONFIG (a ServiceAccount token)
SIGTERM       prints "got SIGTERM" and exits 0 after --term-delay seconds (--ignore-term: never)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import yaml

state = {"sick": False}


def api_get(path: str) -> tuple[int, dict]:
    config = yaml.safe_load(open(os.environ["KUBECONFIG"]))
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    session = requests.Session()
    session.trust_env = False
    response = session.get(cluster["server"] + path, headers={"Authorization": f"Bearer {user['token']}"},
                           verify=cluster["certificate-authority"], timeout=5)
    return response.status_code, response.json()


class Handler(BaseHTTPRequestHandler):
    def reply(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(500 if state["sick"] else 200, {"sick": state["sick"]})
        elif self.path == "/ready":
            self.reply(200, {})
        elif self.path == "/whoami":
            self.reply(200, {"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in ARGS.show},
                             "pid": os.getpid(), "cwd": os.getcwd(), "hostname": socket.gethostname(),
                             "hostnameResolvesTo": socket.gethostbyname(socket.gethostname())})
        elif self.path == "/self":
            namespace, name = os.environ["POD_NAMESPACE"], os.environ["POD_NAME"]
            code, pod = api_get(f"/api/v1/namespaces/{namespace}/pods/{name}")
            secrets_code, _ = api_get(f"/api/v1/namespaces/{namespace}/secrets")
            self.reply(200, {"pod": code, "uid": pod.get("metadata", {}).get("uid"), "secrets": secrets_code})
        else:
            self.reply(404, {})

    def do_POST(self) -> None:
        if self.path == "/sick":
            state["sick"] = True
            self.reply(200, {})
        else:
            self.reply(404, {})

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--show", action="append", default=[])
    parser.add_argument("--term-delay", type=float, default=0.2)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--write", default="", help="write a file in this directory (made if missing; e.g. an emptyDir)")
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("0.0.0.0", ARGS.port), Handler)

    def on_term(signum, frame):
        print("got SIGTERM", flush=True)
        if ARGS.ignore_term:
            return
        threading.Thread(target=lambda: (time.sleep(ARGS.term_delay), os._exit(0)), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    if ARGS.write:
        os.makedirs(ARGS.write, exist_ok=True)
        with open(os.path.join(ARGS.write, "written-by"), "w") as out:
            out.write(os.environ.get("HOSTNAME", ""))
    print(f"serving on :{ARGS.port} label={ARGS.label}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

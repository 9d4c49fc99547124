"""kruise-manager: the webhook (every replica) and the leader-elected controller.

Flags keep upstream OpenKruise's names; ``--role`` lets webhook and controller run as
separate Deployments. By default the process started is :mod:`manager.supervisor`, which runs
the manager below as its worker and replaces it at once when it dies. SIGTERM: readiness
fails at once, the controller stops, the Lease is released (a standby takes it within a
second), in-flight admissions finish, exit 0. Losing the Lease exits 1, so the worker (or,
unsupervised, the container) restarts with clean state.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from .app import Manager
from .logs import setup_logging
from .options import parse, validate

log = logging.getLogger("manager")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    setup_logging(args.log_format, args.verbose)
    from .supervisor import Handoff, Supervisor

    try:
        validate(args)
    except ValueError as err:
        print(f"kruise-manager: error: {err}", file=sys.stderr)
        return 2
    handoff = Handoff.from_environ()
    if args.supervise and handoff is None:
        return Supervisor(args, sys.argv[1:] if argv is None else argv).run()
    try:
        manager = Manager(args, handoff)
    except Exception as err:  # bad kubeconfig and the like: one line, not a traceback
        print(f"kruise-manager: error: cannot build the API client: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=manager.shutdown, daemon=True).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=manager.shutdown, daemon=True).start())
    try:
        manager.start()
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    log.info("started", extra={"identity": manager.identity, "role": args.role, "namespace": manager.namespace})
    while not manager.done.wait(0.5):
        pass
    time.sleep(0.05)
    return manager.exit_code


if __name__ == "__main__":
    sys.exit(main())

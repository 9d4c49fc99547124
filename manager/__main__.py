"""kruise-manager: the webhook (every replica) and the leader-elected controller.

Flags keep upstream OpenKruise's names; ``--role`` lets webhook and controller run as
separate Deployments. ``kruise-manager socket-holder`` runs :mod:`manager.sockets` instead
(the pod's second container). By default the process started is :mod:`manager.supervisor`, which runs
the manager below as its worker and replaces it at once when it dies. SIGTERM: readiness
fails at once, the controller stops, the Lease is released (a standby takes it within a
second), in-flight admissions finish, exit 0. Losing the Lease exits 1, so the worker (or,
unsupervised, the container) restarts with clean state.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["socket-holder"]:  # a container of its own: it imports none of the manager
        from .sockets import main as hold

        return hold(given[1:])
    from .app import preload, run
    from .logs import setup_logging
    from .options import parse, validate

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
        # Imported once here, so a worker forked from this process starts without them.
        preload()
        gc.freeze()  # what was imported stays shared with each worker: its collector never touches it
        return Supervisor(args, sys.argv[1:] if argv is None else argv, worker=run).run()
    return run(args, handoff)


if __name__ == "__main__":
    sys.exit(main())

"""The packaged kruise-manager: a replicated admission webhook and a leader-elected
controller for SidecarSet, implementing OpenKruise's high-availability design.

One concept per module: ``options`` (every flag, declared once), ``lease`` (leader election),
``webhook`` (the HTTPS admission server) with ``http1`` (HTTP/1.1 framing by llhttp), ``admission`` (reviews and answers), ``memo``
(answers reused for a ReplicaSet's pods) and ``certwatcher`` (the serving pair reloaded),
``handlers`` (the admission handlers), ``certs`` (the serving credential and caBundle),
``health`` (readiness and liveness), ``app`` (the wiring of a process by its role), ``logs``, ``sidecarset`` (defaulting, injection, validation, status,
as upstream v1.8.3), ``gojson`` and ``gotypes`` (upstream's Go encoding of a SidecarSet),
``controller`` (leader-only status writer; ``workloadspread.controller`` is WorkloadSpread's; both run on
``reconciler``, their loop and lease gate), ``informer`` (watched caches), ``metrics``,
``rbac`` (every API call the manager makes), ``runnable`` (what runs, and when it stops),
``supervisor`` (the container's main process: holds the sockets, restarts the worker), ``sockets`` (the
socket holder that keeps them across a restart of the whole container). The API
client is ``kubekit.api``.
"""

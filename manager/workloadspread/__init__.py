"""WorkloadSpread (``apps.kruise.io/v1alpha1``), as upstream OpenKruise v1.8.3 defines it: spread
a Deployment's, ReplicaSet's or Job's pods over subsets (zones, node pools) with ``maxReplicas``.

- ``subsets``: pure rules: which subset a new pod joins, what it injects, the status bookkeeping.
- ``admission``: the pod webhook's part (create: choose and inject; delete/eviction: deletingPods).
- ``validation``: the WorkloadSpread object's validating webhook.
- ``controller``: the leader's status, stale-entry cleanup, pod deletion cost, rescheduling.
"""

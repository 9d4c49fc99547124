"""The hostlet: a kubelet for the local control plane whose containers run on this machine.

kwok simulates pods; some pods must really run (the kruise-manager replicas, so that the Lease
holder is a pod on a node in a zone and the apiserver calls their webhooks). The hostlet is the
kubelet of nodes created without kwok's annotation (:func:`create_hostlet_nodes`): it keeps them
Ready (status and a kube-node-lease Lease, renewed as a kubelet does) and runs every container of
every pod bound to them as a process inside the node's network-namespace host, reporting pod
status from the processes and from their real probes.

Where it differs from a kubelet, on purpose:
- Nothing is pulled. A container whose image is present locally (``images``: OCI archives such
  as ``make image``'s) runs from it in an OCI runtime, crun or runc (``oci``), when one can run
  containers here; otherwise it runs only if a local program is mapped to its command or image
  (``programs``; ``kruise-manager`` maps to ``python -m manager``); an image's program runs only
  for its entrypoint (upstream's ``/kruise-daemon`` of the manager image is not the manager).
  Any other container stays Waiting with reason CreateContainerError: nothing from a pod spec
  is executed unmapped.
- Pods share their node's network: podIP is the node's address, hostNetwork or not. As a
  kubelet does, each container gets its own hostname (UTS namespace): the pod's name, or the
  node's with hostNetwork, and an /etc/hosts naming it.
- A process container's root filesystem is this machine's, but its /tmp is its own (fresh each
  run), and emptyDir volumes are bind-mounted at their mountPath in the container's own mount
  namespace (a mountPath outside /tmp is created on this machine if missing); other volumes
  are not mounted.
  The ServiceAccount credential is a kubeconfig in $KUBECONFIG instead of a mounted token.
- Container restarts back off from ``backoff_initial`` (first restart immediate), doubling up to
  ``backoff_max``, reset after a container ran longer than ``backoff_max``.
- Containers from an image run in the OCI runtime with the pod's user, group, capabilities,
  read-only root and ``limits.memory`` as their cgroup's limit; plain processes run as this
  machine's user in a memory cgroup of their own (``limits.memory``), securityContext not
  enforced. Neither enforces seccomp or CPU limits, and exec probes run on the host.

It talks to the API as each node (``system:node:<name>`` client certificates), so the Node
authorizer holds it to a kubelet's rights.

The package, by concern (as the kubelet's own packages): ``spec`` (what a pod spec means),
``node`` (nodes, credentials, heartbeat), ``kubelet`` (the watch and dispatch, fault hooks),
``model`` (a container's state, the worker's view of the hostlet), ``worker`` (one pod's lifecycle), ``runtime`` (processes), ``oci`` (containers from local
images), ``prober``, ``env``, ``status``.
"""

from .kubelet import Hostlet
from .node import NodeAgent, create_hostlet_nodes, node_credential
from .model import Backoff, Container, ProbeState
from .prober import probe_allowed
from .spec import (MANAGER_PROGRAM, HostletError, Programs, expand, field_path_value, image_name, pod_hostname,
                   probe_url, quantity, resolve_program, resource_field_value)
from .worker import PodWorker

__all__ = ["Backoff", "Container", "Hostlet", "HostletError", "MANAGER_PROGRAM", "NodeAgent", "PodWorker", "ProbeState",
           "Programs", "create_hostlet_nodes", "expand", "field_path_value", "image_name", "node_credential",
           "pod_hostname", "probe_allowed", "probe_url", "quantity", "resolve_program", "resource_field_value"]

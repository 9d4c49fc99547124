"""Pod status as the kubelet reports it (phase, conditions with their transition times,
container states and last terminations), written only when it changed, and kubelet-style
Events on the pod."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubekit import paths
from kubekit.api import ApiError, resource_version

from .spec import API_TIMEOUT, HostletError, now_rfc3339

if TYPE_CHECKING:
    from .runtime import Container


def pod_url(worker, sub: str = "") -> str:
    return paths.pods(worker.namespace, worker.name) + sub


def pod_status(worker) -> dict:
    ip = worker.node.host.ip
    init_done = all(c.completed for c in worker.init)
    all_ready = init_done and all(c.ready for c in worker.containers)
    conditions = []
    for kind, value in (("PodReadyToStartContainers", True), ("Initialized", init_done),
                        ("ContainersReady", all_ready), ("Ready", all_ready and gates_pass(worker))):
        state = "True" if value else "False"
        previous = worker.transitions.get(kind)
        if previous is None or previous[0] != state:
            worker.transitions[kind] = (state, now_rfc3339())
        condition = {"type": kind, "status": state, "lastProbeTime": None,
                     "lastTransitionTime": worker.transitions[kind][1]}
        if not value and kind in ("ContainersReady", "Ready"):
            unready = [c.name for c in worker.containers if not c.ready]
            condition.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(unready)}]")
        conditions.append(condition)
    return {
        "phase": phase(worker), "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": worker.start_stamp, "conditions": conditions,
        "initContainerStatuses": [container_status(worker, c) for c in worker.init],
        "containerStatuses": [container_status(worker, c) for c in worker.containers],
    }


def gates_pass(worker) -> bool:
    conditions = {c.get("type"): c.get("status") for c in worker.pod.get("status", {}).get("conditions") or []}
    return all(conditions.get(g["conditionType"]) == "True" for g in worker.pod["spec"].get("readinessGates") or [])


def phase(worker) -> str:
    if worker.init and not all(c.completed for c in worker.init):
        failed = any(c.terminated and worker.stays_exited(c) for c in worker.init)
        return "Failed" if failed else "Pending"
    if any(c.alive() or not worker.stays_exited(c) for c in worker.containers):
        return "Running" if any(c.process is not None or c.terminated or c.last_terminated
                                for c in worker.containers) else "Pending"
    return "Succeeded" if all(c.terminated["exitCode"] == 0 for c in worker.containers) else "Failed"


def container_status(worker, container: Container) -> dict:
    spec = container.spec
    status = {"name": container.name, "image": spec.get("image", ""), "imageID": "",
              "ready": container.ready, "restartCount": container.restart_count,
              "started": container.started}
    last = container.last_terminated
    if container.alive():
        status["containerID"] = f"hostlet://{container.process.pid}"
        status["state"] = {"running": {"startedAt": container.started_stamp}}
    elif container.terminated is not None and (worker.stays_exited(container) or worker.deleting or not container.waiting[0]):
        status["state"] = {"terminated": container.terminated}
    else:
        reason, message = container.waiting
        status["state"] = {"waiting": {"reason": reason or "ContainerCreating",
                                       **({"message": message} if message else {})}}
        last = container.terminated or last  # waiting to restart: the exit is the last state
    status["lastState"] = {"terminated": last} if last else {}
    return status


OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def write_status(worker) -> None:
    """Written when it changed, or when someone else changed what it says since the last write
    (as the kubelet's status manager reconciles): the node lifecycle controller marks a lost
    node's pods NotReady, and a status written before that (a healed partition racing the
    controller's marking) would otherwise never be written again."""
    status = pod_status(worker)
    if status == worker.last_status and not overwritten(worker):
        return
    body = {"metadata": {"uid": worker.uid}, "status": patch_of(status)}
    try:
        written = worker.api.request("PATCH", pod_url(worker, "/status"), body=body, timeout=API_TIMEOUT,
                                     content_type="application/strategic-merge-patch+json")
    except ApiError as err:
        if err.status in (404, 409):
            worker.gone = True  # deleted, or replaced by a pod of the same name
            return
        raise HostletError(f"status update: {str(err)[:200]}") from err
    worker.last_status = status
    worker.last_written_version = resource_version(written)


def patch_of(status: dict) -> dict:
    """The strategic-merge body: a condition that holds drops the reason and message it had
    while it did not (a merge keeps fields the patch leaves out; null deletes them)."""
    conditions = [c if c["status"] == "False" else {**c, "reason": None, "message": None}
                  for c in status["conditions"]]
    return {**status, "conditions": conditions}


def overwritten(worker) -> bool:
    """The pod as the node's watch last saw it is newer than this hostlet's last write and
    says another thing about the conditions this hostlet owns."""
    if worker.last_status is None:
        return False
    seen = worker.pod
    version = resource_version(seen)
    if version is None or worker.last_written_version is None or version <= worker.last_written_version:
        return False  # the watch has not caught up with the last write yet
    theirs = {c.get("type"): c.get("status") for c in (seen.get("status") or {}).get("conditions") or []}
    return any(theirs.get(c["type"]) != c["status"] for c in worker.last_status["conditions"]
               if c["type"] in OWN_CONDITIONS)


def post_event(worker, reason: str, message: str, kind: str = "Normal") -> None:
    """A kubelet-style Event on the pod (best effort: a lost Event changes nothing)."""
    stamp = now_rfc3339()
    body = {"metadata": {"generateName": f"{worker.name}.", "namespace": worker.namespace},
            "involvedObject": {"kind": "Pod", "namespace": worker.namespace, "name": worker.name,
                               "uid": worker.uid, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet", "host": worker.node.name}}
    try:
        worker.api.request("POST", paths.events(worker.namespace), body=body, timeout=2)
    except ApiError:
        pass

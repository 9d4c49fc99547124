"""Pod status as the kubelet reports it (phase, conditions with their transition times,
container states and last terminations), written only when it changed, and kubelet-style
Events on the pod."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubekit import paths
from kubekit.api import ApiError

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


def write_status(worker) -> None:
    status = pod_status(worker)
    if status == worker.last_status:
        return
    body = {"metadata": {"uid": worker.uid}, "status": status}
    try:
        worker.api.request("PATCH", pod_url(worker, "/status"), body=body, timeout=API_TIMEOUT,
                           content_type="application/strategic-merge-patch+json")
    except ApiError as err:
        if err.status in (404, 409):
            worker.gone = True  # deleted, or replaced by a pod of the same name
            return
        raise HostletError(f"status update: {str(err)[:200]}") from err
    worker.last_status = status


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

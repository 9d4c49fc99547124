"""Random (SidecarSet set, namespace, pods) combinations for the SidecarSet differential test
(test_sidecarset_fuzz.py): pure and seeded, so a seed and an index name one combination for
ever, and a shrinker that cuts a failing combination down while a given predicate still holds.

A combination is the data of a parity case (parity_cases.py): ``id``, ``namespace`` (one of
NAMESPACES, reused across combinations: their labels are fixed), ``namespace_labels``,
``sidecarsets`` (created in order) and ``pods``. Every SidecarSet selects by the label
``fuzz: <id>`` (matchLabels, plus extra terms), so combinations never see each other's pods
and upstream's selector-overlap check never relates two combinations.

Each kind of content is a feature; ``ALL`` is everything. ``DEFERRED`` would name the features
whose upstream behaviour this project's manager lacks (none now); CI runs ``ALL - DEFERRED``."""

from __future__ import annotations

import copy
import json
import random
from typing import Callable

# namespace -> labels (besides kubernetes.io/metadata.name), created once on both sides
NAMESPACES = {
    "fuzz-a": {"team": "a"},
    "fuzz-b": {"team": "b", "env": "prod"},
    "fuzz-plain": {},
}
# Namespaces whose pods both managers leave alone, as installed here: the manager's own, and
# kube-system once labelled control-plane (upstream's kustomize install skips namespaces with
# that label; this project's manager skips kube-system and its own by name). The runner puts
# the label on kube-system for the run and takes it off after.
EXCLUDED_NAMESPACES = {"kube-system": {"control-plane": "kube-system"}, "kruise-system": {}}

ALL = frozenset({
    "namespace_scope",      # spec.namespace, namespaceSelector (labels, expressions, metadata.name)
    "selector_terms",       # extra matchLabels / matchExpressions on the pod selector
    "several",              # up to 3 SidecarSets on one pod
    "inject_policy",        # podInjectPolicy Before/After, absent
    "transfer_env",         # transferEnv by name, sourceContainerNameFrom, envNames
    "share_volume",         # shareVolumePolicy, pod mounts with subPath/subPathExpr/readOnly
    "mounts",               # sidecar mounts: subPath, readOnly, duplicate mountPath
    "pod_conflicts",        # sidecar and volume names the pod also has
    "pull_secrets",         # imagePullSecrets on both
    "paused",               # injectionStrategy.paused
    "resources",            # container resources requests/limits
    "update_strategy",      # updateStrategy type, partition, maxUnavailable, paused
    "init_containers",      # plain init containers
    "excluded_namespaces",  # pods in a namespace upstream's webhook configuration excludes
    "invalid",              # invalid variants of the above
    # the rules implemented last (deferred in CI until they were)
    "hot_upgrade",          # upgradeStrategy HotUpgrade
    "patch_metadata",       # patchPodMetadata
    "native_sidecar",       # init containers with restartPolicy Always
    "injection_revision",   # injectionStrategy.revision
    "is_injected_env",      # a sidecar declaring IS_INJECTED
    "name_pattern",         # SidecarSet names upstream's pattern refuses (dots)
    "cross_conflicts",      # container / volume names shared by two SidecarSets of one pod
})
DEFERRED: frozenset[str] = frozenset()  # every feature's upstream behaviour is implemented
CI_FEATURES = ALL - DEFERRED

FUZZ_LABEL = "fuzz"
SIDECAR_NAMES = ("mesh", "log", "agent", "proxy", "dns", "app", "web")
INIT_NAMES = ("init-a", "init-b", "prepare", "bootstrap", "own-init")
POD_CONTAINER_NAMES = ("app", "web", "main")
VOLUME_NAMES = ("cfg", "logs", "shared", "cache", "data")
POD_VOLUME_NAMES = ("data", "www", "logs")
IMAGES = ("busybox:1.28", "envoy:1.0", "fluentd:v1", "registry.example/agent", "nginx",
          "registry.example:5000/tools/probe:2.1")
ENV_NAMES = ("TZ", "REGION", "POD_IP", "NODE_NAME", "LEVEL")
SECRETS = ("reg-a", "reg-b", "reg-c")


class _Gen:
    def __init__(self, rng: random.Random, features: frozenset[str], cid: str):
        self.r = rng
        self.f = features
        self.cid = cid
        self.faults = 0  # invalid variants the current SidecarSet may still get

    def on(self, feature: str, p: float = 0.5) -> bool:
        return feature in self.f and self.r.random() < p

    def bad(self, p: float = 0.08) -> bool:
        """Make this part invalid? At most one invalid variant per SidecarSet (about one in
        three has one), so most combinations still inject and a refusal has one reason."""
        if self.faults and self.r.random() < p * 2:
            self.faults -= 1
            return True
        return False

    def pick(self, seq):
        return self.r.choice(list(seq))

    def some(self, seq, lo: int = 0, hi: int | None = None) -> list:
        seq = list(seq)
        k = self.r.randint(lo, min(hi if hi is not None else len(seq), len(seq)))
        return self.r.sample(seq, k)

    # ---- pods ---------------------------------------------------------------------------
    def env(self) -> list[dict]:
        out = []
        for name in self.some(ENV_NAMES, 0, 3):
            if name == "POD_IP":
                out.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
            elif name == "NODE_NAME":
                out.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
            else:
                out.append({"name": name, "value": self.pick(("eu", "UTC", "debug", "1"))})
        return out

    def pod(self, index: int) -> dict:
        volumes = [{"name": n, "emptyDir": {}} for n in self.some(POD_VOLUME_NAMES, 0, 2)]
        containers = []
        for name in self.some(POD_CONTAINER_NAMES, 1, 2):
            container = {"name": name, "image": self.pick(("nginx:1.15.1", "busybox:1.28"))}
            env = self.env()
            if env:
                container["env"] = env
            mounts = []
            for volume in volumes:
                if self.r.random() < 0.7:
                    mount = {"name": volume["name"], "mountPath": f"/pod/{volume['name']}"}
                    if self.on("share_volume", 0.3):
                        mount["readOnly"] = True
                    if self.on("share_volume", 0.2):
                        mount["subPath"] = "sub"
                    elif self.on("share_volume", 0.2) and env:
                        mount["subPathExpr"] = f"x/$({env[0]['name']})"
                    mounts.append(mount)
            if mounts:
                container["volumeMounts"] = mounts
            containers.append(container)
        labels = {FUZZ_LABEL: self.cid}
        if self.on("selector_terms", 0.6):
            labels["tier"] = self.pick(("frontend", "backend"))
        annotations = {}
        if self.on("transfer_env", 0.5):
            target = self.pick([c["name"] for c in containers] + ["absent"])
            (labels if self.r.random() < 0.5 else annotations)["main-container"] = target
        spec = {"containers": containers}
        if volumes:
            spec["volumes"] = volumes
        if self.on("init_containers", 0.3):
            spec["initContainers"] = [{"name": self.pick(("own-init", "zz-init")), "image": "busybox:1.28"}]
        if self.on("pull_secrets", 0.4):
            spec["imagePullSecrets"] = [{"name": n} for n in self.some(SECRETS, 1, 2)]
        meta = {"name": f"p{index}", "labels": labels}
        if annotations:
            meta["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    # ---- SidecarSets --------------------------------------------------------------------
    def transfer(self) -> dict:
        transfer = {}
        if self.on("transfer_env", 0.35):
            kind = self.pick(("labels", "annotations"))
            key = "Main-Container" if kind == "annotations" and self.r.random() < 0.2 else "main-container"
            transfer["sourceContainerNameFrom"] = {"fieldRef": {"fieldPath": f"metadata.{kind}['{key}']"}}
        else:
            transfer["sourceContainerName"] = self.pick(POD_CONTAINER_NAMES)
        if self.r.random() < 0.5:
            transfer["envName"] = self.pick(ENV_NAMES)
        if self.r.random() < 0.5 or "envName" not in transfer:
            transfer["envNames"] = self.some(ENV_NAMES + ("ABSENT",), 1, 3)
        if self.bad():
            transfer.pop("envName", None)
            transfer.pop("envNames", None)
        if self.bad():
            transfer["sourceContainerNameFrom"] = {"fieldRef": {"fieldPath": self.pick((
                "spec.nodeName", "metadata.name", "metadata.labels['bad key']", "metadata.labels"))}}
        return transfer

    def container(self, name: str, volumes: list[dict], init: bool) -> dict:
        c = {"name": name, "image": self.pick(IMAGES)}
        if self.bad(0.04):
            del c["image"]
        if self.bad(0.03):
            c["image"] = " busybox"  # Kubernetes refuses leading or trailing spaces
        if self.on("inject_policy", 0.6):
            c["podInjectPolicy"] = self.pick(("BeforeAppContainer", "AfterAppContainer"))
            if self.bad():
                c["podInjectPolicy"] = "Middle"
        if self.on("share_volume", 0.4):
            c["shareVolumePolicy"] = {"type": self.pick(("enabled", "disabled"))}
            if self.bad():
                c["shareVolumePolicy"]["type"] = self.pick(("sometimes", "Enabled"))
        env = []
        if self.r.random() < 0.3:
            env.append({"name": self.pick(ENV_NAMES), "value": "own"})
            if self.bad(0.3):
                env[-1]["name"] = self.pick(("BAD NAME", "", "A=B"))
        if self.on("is_injected_env", 0.1):
            env.append({"name": "IS_INJECTED", "value": "false"})
        if env:
            c["env"] = env
        if self.on("transfer_env", 0.5):
            c["transferEnv"] = [self.transfer() for _ in range(self.r.randint(1, 2))]
        mounts = []
        for volume in volumes:
            if self.r.random() < 0.6:
                mount = {"name": volume["name"], "mountPath": f"/side/{volume['name']}"}
                if self.on("mounts", 0.25):
                    mount["readOnly"] = True
                if self.on("mounts", 0.25):
                    mount["subPath"] = "part"
                    if self.bad(0.3):
                        mount["subPath"] = self.pick(("/abs", "../up"))
                if self.on("mounts", 0.15):
                    mount["mountPath"] = "/pod/data"  # the path an app container may mount too
                mounts.append(mount)
        if mounts and self.on("mounts", 0.15):
            mounts.append({**mounts[0], "subPath": "again"} if self.bad(0.5) else
                          {**mounts[0], "mountPath": mounts[0]["mountPath"] + "-2"})
        if self.bad(0.05):
            mounts.append({"name": "undeclared", "mountPath": "/undeclared"})
        if mounts:
            c["volumeMounts"] = mounts
        if self.on("resources", 0.3):
            requests = {"cpu": self.pick(("10m", "0.1", "100m")), "memory": self.pick(("16Mi", "64Mi", "1e6"))}
            limits = {"cpu": self.pick(("100m", "1", "0.5")), "memory": self.pick(("64Mi", "128Mi"))}
            if self.bad(0.2):
                requests["cpu"] = "2"  # above every limit
            c["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if self.r.random() < 0.7}
        if self.on("hot_upgrade", 0.15) and not init:
            c["upgradeStrategy"] = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "busybox:empty"}
            if self.bad(0.3):
                del c["upgradeStrategy"]["hotUpgradeEmptyImage"]
        elif self.r.random() < 0.15:
            c["upgradeStrategy"] = {"upgradeType": "ColdUpgrade"}
        if init and self.on("native_sidecar", 0.3):
            c["restartPolicy"] = "Always"
        return c

    def volume(self, name: str) -> dict:
        kind = self.pick(("emptyDir", "configMap", "secret", "hostPath", "none"))
        if self.bad(0.1):
            return {"name": name, "hostPath": {"path": "relative/x"}} if self.r.random() < 0.5 else \
                {"name": name, "configMap": {"name": "cm", "items": [{"key": "k", "path": "../escape"}]}}
        source = {"emptyDir": {"emptyDir": {}}, "configMap": {"configMap": {"name": "cm"}},
                  "secret": {"secret": {"secretName": "s"}}, "hostPath": {"hostPath": {"path": "/var/x"}},
                  "none": {}}[kind]
        return {"name": name, **source}

    def selector(self) -> dict:
        selector = {"matchLabels": {FUZZ_LABEL: self.cid}}
        if self.on("selector_terms", 0.4):
            if self.r.random() < 0.5:
                selector["matchLabels"]["tier"] = self.pick(("frontend", "backend"))
            else:
                op = self.pick(("In", "NotIn", "Exists", "DoesNotExist"))
                expr = {"key": "tier", "operator": op}
                if op in ("In", "NotIn"):
                    expr["values"] = self.some(("frontend", "backend", "edge"), 1, 2)
                    if self.bad(0.2):
                        expr["values"] = []
                elif self.bad(0.2):
                    expr["values"] = ["frontend"]
                selector["matchExpressions"] = [expr]
        if self.bad(0.03):
            selector = {}
        return selector

    def scope(self, spec: dict, namespace: str) -> None:
        if not self.on("namespace_scope", 0.5):
            return
        choice = self.pick(("namespace", "labels", "expressions", "name"))
        if choice == "namespace":
            spec["namespace"] = self.pick((namespace, namespace, "fuzz-b"))
        elif choice == "labels":
            spec["namespaceSelector"] = {"matchLabels": {"team": self.pick(("a", "b"))}}
        elif choice == "expressions":
            spec["namespaceSelector"] = {"matchExpressions": [
                {"key": self.pick(("team", "env")), "operator": self.pick(("In", "NotIn")), "values": ["b", "prod"]}]}
        else:
            spec["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": self.pick((namespace, "fuzz-a"))}}
        if self.bad(0.15):
            spec["namespace"] = namespace
            spec["namespaceSelector"] = {"matchLabels": {"team": "a"}}

    def sidecarset(self, index: int, namespace: str, taken: dict[str, set]) -> dict:
        self.faults = 1 if self.on("invalid", 0.35) else 0
        name = f"{self.cid}-s{index}"
        if self.on("name_pattern", 0.1):
            name = f"{self.cid}.s{index}"
        spec: dict = {"selector": self.selector()}
        self.scope(spec, namespace)
        clash = "pod_conflicts" in self.f  # else no name a pod may have
        volume_names = self.some([n for n in VOLUME_NAMES if clash or n not in POD_VOLUME_NAMES], 0, 3)
        if "cross_conflicts" not in self.f:
            volume_names = [n for n in volume_names if n not in taken["volumes"]]
        volumes = [self.volume(n) for n in volume_names]
        if volumes and self.bad(0.05):
            volumes.append(copy.deepcopy(volumes[0]))  # duplicate volume name
        if volumes:
            spec["volumes"] = volumes

        def names(pool, lo, hi, kind):
            chosen = self.some(pool, lo, hi)
            if "cross_conflicts" not in self.f:
                chosen = [n for n in chosen if n not in taken["containers"]]
            taken["containers"].update(chosen)
            return chosen

        containers = [self.container(n, volumes, False) for n in names(
            [n for n in SIDECAR_NAMES if clash or n not in POD_CONTAINER_NAMES], 0, 3, "containers")]
        inits = [self.container(n, volumes, True) for n in names(INIT_NAMES, 0, 2, "inits")] \
            if self.on("init_containers", 0.4) or self.on("native_sidecar", 0.2) else []
        if not containers and not inits and not self.bad(0.3):
            fallback = f"side-{index}"
            taken["containers"].add(fallback)
            containers = [self.container(fallback, volumes, False)]
        if containers and self.bad(0.04):
            containers.append(copy.deepcopy(containers[0]))  # duplicate container name
        if containers:
            spec["containers"] = containers
        if inits:
            spec["initContainers"] = inits
        taken["volumes"].update(volume_names)
        if self.on("pull_secrets", 0.35):
            spec["imagePullSecrets"] = [{"name": n} for n in self.some(SECRETS, 1, 3)]
        if self.on("paused", 0.15):
            spec["injectionStrategy"] = {"paused": True}
        if self.on("injection_revision", 0.08):
            spec.setdefault("injectionStrategy", {})["revision"] = {"revisionName": f"{name}-abc", "policy": "Always"}
        if self.on("update_strategy", 0.3):
            strategy = {"type": self.pick(("RollingUpdate", "NotUpdate"))}
            if self.r.random() < 0.5:
                strategy["maxUnavailable"] = self.pick((1, 2, "50%"))
            if self.r.random() < 0.3:
                strategy["partition"] = self.pick((0, 1, "20%"))
            if self.r.random() < 0.2:
                strategy["paused"] = True
            if self.bad(0.2):
                strategy["maxUnavailable"] = "150%"
            spec["updateStrategy"] = strategy
        if any(c.get("restartPolicy") == "Always" for c in inits) and self.r.random() < 0.7:
            spec["updateStrategy"] = {"type": "NotUpdate"}
        if self.on("patch_metadata", 0.1):
            spec["patchPodMetadata"] = [{"annotations": {"example.com/mesh": "on"}, "patchPolicy": "Retain"}]
        self.faults = 0
        return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
                "spec": spec}


def combination(seed: int, index: int, features: frozenset[str] = ALL) -> dict:
    """The combination ``index`` of the run ``seed``: the same arguments, the same result."""
    rng = random.Random(f"sidecarset-fuzz:{seed}:{index}")
    features = frozenset(features)
    cid = f"f{seed % 100000}-{index}"
    g = _Gen(rng, features, cid)
    namespace = g.pick(NAMESPACES)
    if g.on("excluded_namespaces", 0.06):
        namespace = g.pick(EXCLUDED_NAMESPACES)
    count = rng.randint(1, 3) if "several" in features else 1
    taken: dict[str, set] = {"containers": set(), "volumes": set()}
    sidecarsets = [g.sidecarset(i, namespace, taken) for i in range(count)]
    pods = [g.pod(i) for i in range(rng.randint(1, 2))]
    labels = NAMESPACES.get(namespace, EXCLUDED_NAMESPACES.get(namespace))
    return {"id": cid, "namespace": namespace, "namespace_labels": dict(labels),
            "sidecarsets": sidecarsets, "pods": pods}


# ---- shrinking --------------------------------------------------------------------------
# Keys a candidate never drops: without them the combination is not one (no SidecarSet, no
# pod, no selection of the combination's pods).
_KEEP = {("metadata",), ("metadata", "name"), ("apiVersion",), ("kind",), ("spec",), ("spec", "selector"),
         ("metadata", "labels"), ("spec", "containers"), ("spec", "selector", "matchLabels")}


def _candidates(value, path=()):
    """Paths of the parts that may be removed from a JSON tree, biggest first (a list item
    before its contents)."""
    if isinstance(value, list):
        for i in range(len(value)):
            yield path + (i,)
        for i, item in enumerate(value):
            yield from _candidates(item, path + (i,))
    elif isinstance(value, dict):
        for key in value:
            rel = tuple(k for k in path[2:] + (key,) if isinstance(k, str))  # relative to the object
            if rel not in _KEEP and not (path[:1] == ("pods",) and rel == ("metadata", "labels", FUZZ_LABEL)) \
                    and not (rel[:2] == ("spec", "selector") and key == FUZZ_LABEL):
                yield path + (key,)
        for key, item in value.items():
            yield from _candidates(item, path + (key,))


def _without(root: dict, path: tuple) -> dict:
    root = copy.deepcopy(root)
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return root


def shrink(comb: dict, fails: Callable[[dict], bool], budget: int = 200) -> tuple[dict, int]:
    """A smaller combination for which ``fails`` still holds: drop SidecarSets, pods,
    containers, list items and fields one at a time, keeping each drop that still fails,
    until no single drop does (or ``budget`` calls of ``fails`` are spent). Returns it and
    the number of calls."""
    calls = 0
    current = comb

    def paths_of(c):
        return [p for top in ("sidecarsets", "pods") for p in _candidates(c[top], (top,))]

    progress = True
    while progress and calls < budget:  # passes until one drops nothing
        progress = False
        paths, i = paths_of(current), 0
        while i < len(paths) and calls < budget:
            path = paths[i]
            if (len(path) == 2 and len(current[path[0]]) == 1) or (
                    path[0] == "pods" and path[2:4] == ("spec", "containers") and len(path) == 5
                    and len(current["pods"][path[1]]["spec"]["containers"]) == 1):
                i += 1
                continue  # keep one SidecarSet, one pod, one container in each pod
            candidate = {**current, path[0]: _without({path[0]: current[path[0]]}, path)[path[0]]}
            calls += 1
            if fails(candidate):
                current, progress = candidate, True
                paths = paths_of(current)  # what followed the dropped part now starts at i
            else:
                i += 1
    return current, calls


# ---- a ready-to-add parity case ---------------------------------------------------------
def as_parity_case(comb: dict, inject: dict[str, list[str]], refused: list[str] = (), note: str = "") -> str:
    """Python source of a ``case(...)`` call for parity_cases.py reproducing ``comb`` (its
    namespace becomes the case's ``parity-<id>``, its selection label the case's)."""
    case_id = "fuzz-" + comb["id"]
    text = json.dumps({"sidecarsets": comb["sidecarsets"], "pods": comb["pods"]})
    text = text.replace(f'"{comb["namespace"]}"', f'"parity-{case_id}"')
    text = text.replace(f'"{FUZZ_LABEL}": "{comb["id"]}"', f'"parity": "{case_id}"')
    body = json.loads(text)
    lines = [f"    # {note}" if note else "    # found by the SidecarSet differential test",
             f"    case({case_id!r},",
             f"         {body['sidecarsets']!r},",
             f"         {body['pods']!r},",
             f"         namespace_labels={comb['namespace_labels']!r},"]
    if refused:
        lines.append(f"         refused={list(refused)!r},")
    lines.append(f"         inject={inject!r}, source='differential test, seed {comb['id']}')")
    return "\n".join(lines)

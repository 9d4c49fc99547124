"""The cases of the injection parity test (test_injection_parity.py): SidecarSets (created, and
for some cases updated after) and pods as a user writes them, taken from upstream's sample (config/samples), the SidecarSet tutorial
(openkruise.io user manual) and the scenarios of upstream's injection tests, written here as
this project's own data. Each case selects its pods by its own ``parity`` label, so cases never
select each other's pods; a case may label its namespace. ``inject`` names, for each pod, the
containers and init containers the SidecarSets must add to it (or put in place of its own), as
the case's source says: the two managers agreeing is not enough, they must agree on that.
``refused`` names the SidecarSets both managers must refuse at creation (the others are created
in order, so a refusal may come from what an earlier one declares)."""

from __future__ import annotations

import json


def sidecarset(name: str, case: str, **spec) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": f"{case}-{name}"},
            "spec": {"selector": {"matchLabels": {"parity": case}}, **spec}}


def pod(name: str, case: str, containers: list[dict], labels: dict | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"parity": case, **(labels or {})},
                         **({"annotations": spec.pop("annotations")} if "annotations" in spec else {})},
            "spec": {"containers": containers, **spec}}


APP = {"name": "app", "image": "nginx:1.15.1"}
NGINX = {"name": "nginx", "image": "nginx:1.15.1", "env": [{"name": "hello1", "value": "world1"},
                                                          {"name": "hello2", "value": "world2"}],
         "volumeMounts": [{"name": "volume-a", "mountPath": "/a/b"}, {"name": "volume-b", "mountPath": "/e/f"}]}
TWO_VOLUMES = [{"name": "volume-a", "emptyDir": {}}, {"name": "volume-b", "emptyDir": {}}]


def _cases() -> list[dict]:
    cases = []

    def case(case_id: str, sidecarsets: list[dict], pods: list[dict], namespace_labels: dict | None = None,
             source: str = "", updates: list[dict] | None = None, *, inject: dict[str, list[str]],
             refused: list[str] = (), configuration: dict | None = None,
             refused_pods: list[dict] = ()) -> None:
        """``refused``: the SidecarSets (full names) both managers must refuse at creation;
        ``configuration``: the data of the ``kruise-configuration`` ConfigMap in each manager's
        namespace while the case runs (patchPodMetadata's whitelist); ``refused_pods``: pods
        whose create both must refuse, with the same HTTP status."""
        assert set(inject) == {p["metadata"]["name"] for p in pods}, f"{case_id}: say what each pod gets"
        assert set(refused) <= {s["metadata"]["name"] for s in sidecarsets}, f"{case_id}: refused names a SidecarSet"
        cases.append({"id": case_id, "sidecarsets": sidecarsets, "pods": pods, "updates": updates or [],
                      "namespace_labels": namespace_labels or {}, "source": source, "inject": inject,
                      "refused": list(refused), "configuration": configuration,
                      "refused_pods": list(refused_pods)})

    # ---- upstream's sample (config/samples/apps_v1alpha1_sidecarset.yaml) -------------------
    c = "sample"
    case(c, [sidecarset("guestbook-sidecar", c,
                        initContainers=[{"name": "init-myservice", "image": "busybox:1.28",
                                         "command": ["sh", "-c", "echo The app is running! && sleep 360"]}],
                        containers=[{"name": "guestbook-sidecar", "image": "openkruise/guestbook:sidecar",
                                     "imagePullPolicy": "Always",
                                     "ports": [{"name": "sidecar-server", "containerPort": 4000}],
                                     "volumeMounts": [{"name": "log-volume", "mountPath": "/var/log"}]}],
                        volumes=[{"name": "log-volume", "emptyDir": {}}])],
         [pod("guestbook", c, [{"name": "guestbook", "image": "openkruise/guestbook:v1",
                                "ports": [{"name": "http-server", "containerPort": 3000}]}],
              labels={"app.kubernetes.io/name": "guestbook-with-sidecar"})],
         inject={"guestbook": ["init-myservice", "guestbook-sidecar"]},
         source="config/samples")

    # ---- the SidecarSet tutorial -------------------------------------------------------------
    c = "tutorial"
    case(c, [sidecarset("test-sidecarset", c, updateStrategy={"type": "RollingUpdate", "maxUnavailable": 1},
                        containers=[{"name": "sidecar1", "image": "centos:6.7", "command": ["sleep", "999d"],
                                     "volumeMounts": [{"name": "log-volume", "mountPath": "/var/log"}]}],
                        volumes=[{"name": "log-volume", "emptyDir": {}}])],
         [pod("test-pod", c, [APP])], inject={"test-pod": ["sidecar1"]},
         source="tutorial: create a SidecarSet")
    c = "policy"
    case(c, [sidecarset("policy", c, containers=[
        {"name": "before", "image": "centos:6.7", "podInjectPolicy": "BeforeAppContainer"},
        {"name": "after", "image": "centos:6.7", "podInjectPolicy": "AfterAppContainer"},
        {"name": "default", "image": "centos:6.7"}])],
         [pod("p", c, [APP, {"name": "second", "image": "busybox:1.28"}])],
         inject={"p": ["before", "after", "default"]},
         source="tutorial: podInjectPolicy")
    c = "share"
    case(c, [sidecarset("share", c, containers=[
        {"name": "log-collector", "image": "fluentd:v1", "shareVolumePolicy": {"type": "enabled"},
         "volumeMounts": [{"name": "cfg", "mountPath": "/etc/fluentd"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "fluentd-config"}}])],
         [pod("p", c, [{**APP, "volumeMounts": [{"name": "logs", "mountPath": "/var/log/nginx"},
                                                 {"name": "data", "mountPath": "/data", "readOnly": True}]}],
              volumes=[{"name": "logs", "emptyDir": {}}, {"name": "data", "hostPath": {"path": "/srv"}}])],
         inject={"p": ["log-collector"]},
         source="tutorial: shareVolumePolicy")
    c = "transfer"
    case(c, [sidecarset("transfer", c, containers=[
        {"name": "mesh", "image": "envoy:1.0", "env": [{"name": "MESH", "value": "on"}],
         "transferEnv": [{"sourceContainerName": "app", "envName": "TZ"},
                         {"sourceContainerName": "app", "envNames": ["NODE_NAME", "POD_IP", "ABSENT"]}]}])],
         [pod("p", c, [{**APP, "env": [{"name": "TZ", "value": "Asia/Shanghai"},
                                       {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                       {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}])],
         inject={"p": ["mesh"]},
         source="tutorial: transferEnv")
    c = "transfer-from"
    case(c, [sidecarset("from-label", c, containers=[
        {"name": "agent", "image": "agent:1", "transferEnv": [
            {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['main-container']"}},
             "envNames": ["REGION"]}]}])],
         [pod("p", c, [{"name": "web", "image": "nginx:1.15.1", "env": [{"name": "REGION", "value": "eu"}]}],
              labels={"main-container": "web"})], inject={"p": ["agent"]},
         source="tutorial: transferEnv sourceContainerNameFrom")
    c = "init"
    case(c, [sidecarset("init", c, initContainers=[
        {"name": "init-config", "image": "busybox:1.28", "command": ["sh", "-c", "cp /cfg/* /shared"],
         "shareVolumePolicy": {"type": "enabled"}, "transferEnv": [{"sourceContainerName": "app", "envName": "TZ"}],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
        containers=[{"name": "reader", "image": "busybox:1.28", "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
        volumes=[{"name": "shared", "emptyDir": {}}])],
         [pod("p", c, [{**APP, "env": [{"name": "TZ", "value": "UTC"}],
                        "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}],
              volumes=[{"name": "www", "emptyDir": {}}],
              initContainers=[{"name": "own-init", "image": "busybox:1.28"}])],
         inject={"p": ["init-config", "reader"]},
         source="tutorial: initContainers with transferEnv and shared volumes")
    c = "native"
    case(c, [sidecarset("native", c, updateStrategy={"type": "NotUpdate"},
                        initContainers=[{"name": "proxy", "image": "envoy:1.0", "restartPolicy": "Always"},
                                        {"name": "bootstrap", "image": "busybox:1.28"}],
                        containers=[{"name": "log", "image": "fluentd:v1"}])],
         [pod("p", c, [APP], initContainers=[{"name": "zz-own", "image": "busybox:1.28"}])],
         inject={"p": ["proxy", "bootstrap", "log"]},
         source="tutorial: native sidecar init containers (restartPolicy Always)")
    c = "secrets"
    case(c, [sidecarset("secrets", c, imagePullSecrets=[{"name": "registry-b"}, {"name": "registry-a"}],
                        containers=[{"name": "private", "image": "registry.example/private:1"}])],
         [pod("p", c, [APP], imagePullSecrets=[{"name": "registry-a"}])], inject={"p": ["private"]},
         source="tutorial: imagePullSecrets")
    c = "ns-scope"
    case(c, [sidecarset("only-here", c, namespace="parity-ns-scope",
                        containers=[{"name": "here", "image": "busybox:1.28"}]),
             sidecarset("elsewhere", c, namespace="nowhere", containers=[{"name": "there", "image": "busybox:1.28"}])],
         [pod("p", c, [APP])], inject={"p": ["here"]},
         source="tutorial: namespace")
    c = "ns-selector"
    case(c, [sidecarset("team-a", c, namespaceSelector={"matchLabels": {"team": "a"}},
                        containers=[{"name": "for-a", "image": "busybox:1.28"}]),
             sidecarset("team-b", c, namespaceSelector={"matchExpressions": [
                 {"key": "team", "operator": "In", "values": ["b", "c"]}]},
                 containers=[{"name": "for-b", "image": "busybox:1.28"}])],
         [pod("p", c, [APP])], namespace_labels={"team": "a"}, inject={"p": ["for-a"]},
         source="tutorial: namespaceSelector")
    c = "paused"
    case(c, [sidecarset("paused", c, injectionStrategy={"paused": True},
                        containers=[{"name": "paused", "image": "busybox:1.28"}]),
             sidecarset("active", c, containers=[{"name": "active", "image": "busybox:1.28"}])],
         [pod("p", c, [APP])], inject={"p": ["active"]},
         source="tutorial: injectionStrategy.paused")
    c = "expressions"
    case(c, [{**sidecarset("tier", c, containers=[{"name": "tiered", "image": "busybox:1.28"}]),
              "spec": {"selector": {"matchExpressions": [{"key": "parity", "operator": "In", "values": [c]},
                                                         {"key": "tier", "operator": "In",
                                                          "values": ["frontend", "middleware"]}]},
                       "containers": [{"name": "tiered", "image": "busybox:1.28"}]}}],
         [pod("front", c, [APP], labels={"tier": "frontend"}), pod("back", c, [APP], labels={"tier": "backend"})],
         inject={"front": ["tiered"], "back": []},
         source="tutorial: selector matchExpressions")

    # ---- scenarios of upstream's injection tests (pkg/webhook/pod/mutating) ----------------
    c = "fixture-basic"
    case(c, [sidecarset("sidecarset1", c,
                        initContainers=[{"name": "init-2", "image": "busybox:1.0.0"},
                                        {"name": "init-1", "image": "busybox:1.0.0"}],
                        containers=[{"name": "dns-f", "image": "dns-f-image:1.0", "podInjectPolicy": "BeforeAppContainer",
                                     "shareVolumePolicy": {"type": "disabled"}},
                                    {"name": "log-agent", "image": "log-agent-image:1.0",
                                     "podInjectPolicy": "AfterAppContainer", "shareVolumePolicy": {"type": "disabled"}}])],
         [pod("test-pod", c, [NGINX], initContainers=[{"name": "init-0", "image": "busybox:1.0.0"}],
              volumes=TWO_VOLUMES)], inject={"test-pod": ["init-2", "init-1", "dns-f", "log-agent"]},
         source="mutating tests: init containers sorted, before/after")
    c = "fixture-transfer"
    case(c, [sidecarset("sidecarset2", c,
                        initContainers=[{"name": "dns-e", "image": "dns-e-image:1.0", "podInjectPolicy": "BeforeAppContainer",
                                         "volumeMounts": [{"name": "volume-1", "mountPath": "/v1"}],
                                         "transferEnv": [{"sourceContainerName": "nginx", "envName": "hello2"}]}],
                        containers=[{"name": "dns-f", "image": "dns-f-image:1.0", "podInjectPolicy": "BeforeAppContainer",
                                     "volumeMounts": [{"name": "volume-1", "mountPath": "/v1"}],
                                     "transferEnv": [{"sourceContainerName": "nginx", "envName": "hello2"}]}],
                        volumes=[{"name": "volume-1"}, {"name": "volume-2"}])],
         [pod("test-pod", c, [NGINX], initContainers=[{"name": "init-0", "image": "busybox:1.0.0"}],
              volumes=TWO_VOLUMES)], inject={"test-pod": ["dns-e", "dns-f"]},
         source="mutating tests: transferEnv, volumes appended (unused one left out)")
    c = "fixture-share"
    case(c, [sidecarset("sidecarset3", c,
                        containers=[{"name": "dns-f", "image": "dns-f-image:1.0", "podInjectPolicy": "AfterAppContainer",
                                     "shareVolumePolicy": {"type": "enabled"},
                                     "volumeMounts": [{"name": "volume-1", "mountPath": "/a/b/c"},
                                                      {"name": "volume-2", "mountPath": "/d/e/f"}]},
                                    {"name": "log-agent", "image": "log-agent-image:1.0",
                                     "podInjectPolicy": "AfterAppContainer"}],
                        volumes=[{"name": "volume-1"}, {"name": "volume-2"}])],
         [pod("test-pod", c, [NGINX], volumes=TWO_VOLUMES)], inject={"test-pod": ["dns-f", "log-agent"]},
         source="mutating tests: shared volume mounts")
    c = "fixture-staragent"
    staragent_pod = {**NGINX, "volumeMounts": NGINX["volumeMounts"] + [{"name": "volume-staragent", "mountPath": "/staragent"}]}
    case(c, [sidecarset("staragent", c,
                        initContainers=[{"name": "dns-e", "image": "dns-e-image:1.0", "podInjectPolicy": "BeforeAppContainer",
                                         "shareVolumePolicy": {"type": "enabled"},
                                         "volumeMounts": [{"name": "volume-3", "mountPath": "/g/h/i"},
                                                          {"name": "volume-4", "mountPath": "/j/k/l"},
                                                          {"name": "volume-staragent", "mountPath": "/staragent"}]}],
                        containers=[{"name": "dns-f", "image": "dns-f-image:1.0", "podInjectPolicy": "AfterAppContainer",
                                     "shareVolumePolicy": {"type": "enabled"},
                                     "volumeMounts": [{"name": "volume-1", "mountPath": "/a/b/c"},
                                                      {"name": "volume-2", "mountPath": "/d/e/f"},
                                                      {"name": "volume-staragent", "mountPath": "/staragent"}]},
                                    {"name": "staragent", "image": "staragent-image:1.0",
                                     "podInjectPolicy": "AfterAppContainer", "shareVolumePolicy": {"type": "enabled"}},
                                    {"name": "log-agent", "image": "log-agent-image:1.0",
                                     "podInjectPolicy": "AfterAppContainer"}],
                        volumes=[{"name": "volume-1"}, {"name": "volume-2"}, {"name": "volume-staragent"},
                                 {"name": "volume-3"}, {"name": "volume-4"}])],
         [pod("test-pod", c, [staragent_pod], volumes=TWO_VOLUMES + [{"name": "volume-staragent", "emptyDir": {}}])],
         inject={"test-pod": ["dns-e", "dns-f", "staragent", "log-agent"]},
         source="mutating tests: mounts deduplicated by path, the pod's volume kept")
    c = "fixture-subpath"
    case(c, [sidecarset("subpath", c, containers=[
        {"name": "reader", "image": "busybox:1.28", "shareVolumePolicy": {"type": "enabled"}}],
        initContainers=[{"name": "prepare", "image": "busybox:1.28", "shareVolumePolicy": {"type": "enabled"}}])],
         [pod("p", c, [{**APP, "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                       {"name": "OD_NAME", "value": "od_name"}],
                        "volumeMounts": [{"name": "conf", "mountPath": "/e/expansion",
                                          "subPathExpr": "foo/$(POD_NAME)/$(OD_NAME)/conf"},
                                         {"name": "conf", "mountPath": "/e/plain", "subPathExpr": "foo"}]}],
              volumes=[{"name": "conf", "emptyDir": {}}])],
         inject={"p": ["prepare", "reader"]},
         source="mutating tests: subPathExpr env copied with the shared mount")
    c = "fixture-merge"
    case(c, [sidecarset("merge", c, containers=[
        {"name": "app", "image": "nginx:1.16.0", "podInjectPolicy": "AfterAppContainer"},
        {"name": "new-before", "image": "busybox:1.28", "podInjectPolicy": "BeforeAppContainer"}])],
         [pod("p", c, [{"name": "first", "image": "busybox:1.28"}, APP])],
         inject={"p": ["app", "new-before"]},
         source="mutating tests: a sidecar named like a pod container replaces it in place")
    c = "fixture-init-sort"
    case(c, [sidecarset("sort", c, initContainers=[{"name": n, "image": "busybox:1.28"} for n in ("c", "a", "b")])],
         [pod("p", c, [APP], initContainers=[{"name": "z-own", "image": "busybox:1.28"}])],
         inject={"p": ["c", "a", "b"]},
         source="mutating tests: init containers sorted by name after the pod's own")
    c = "fixture-hash-compat"
    case(c, [sidecarset("hash", c, containers=[{"name": "side", "image": "busybox:1.28"}])],
         [pod("p", c, [APP], annotations={
             "kruise.io/sidecarset-hash": '{"sidecarset-test":"bv6d2fbw97wz8xx5x4v4wddwbd5z744wcf7c786dd4dvxvd5w6w424df7vx47989"}',
             "kruise.io/sidecarset-hash-without-image": '{"sidecarset-test":"54x5977vf9zz4248w7v44456zf655b8bcffv7x74w88f6dwb994fw48b8f9b8959"}',
             "kruise.io/sidecarset-injected-list": "sidecarset-test"})],
         inject={"p": ["side"]},
         source="mutating tests: the older hash annotation format kept and extended")

    # ---- defaulting and the rest of the supported fields ----------------------------------
    c = "defaults"
    case(c, [sidecarset("defaults", c, containers=[
        {"name": "probe", "image": "registry.example/probe", "ports": [{"containerPort": 9000}],
         "resources": {"limits": {"cpu": "0.5", "memory": "1.5Gi"}, "requests": {"cpu": "0.0001", "memory": "128974848"}},
         "livenessProbe": {"httpGet": {"port": 9000}}, "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 3},
         "lifecycle": {"preStop": {"httpGet": {"port": 9000, "path": "/quit"}}},
         "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}])],
         [pod("p", c, [APP])], inject={"p": ["probe"]},
         source="defaults: image pull policy, ports, quantities, probes, fieldRef")
    c = "volume-kinds"
    case(c, [sidecarset("volumes", c, containers=[
        {"name": "reader", "image": "busybox:1.28", "volumeMounts": [
            {"name": "cm", "mountPath": "/cm"}, {"name": "sec", "mountPath": "/sec"}, {"name": "dapi", "mountPath": "/dapi"},
            {"name": "proj", "mountPath": "/proj"}, {"name": "host", "mountPath": "/host"},
            {"name": "mem", "mountPath": "/mem"}]}],
        volumes=[{"name": "cm", "configMap": {"name": "c", "items": [{"key": "k", "path": "p"}]}},
                 {"name": "sec", "secret": {"secretName": "s"}},
                 {"name": "dapi", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                 {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                           {"configMap": {"name": "c"}}]}},
                 {"name": "host", "hostPath": {"path": "/var/lib/x"}},
                 {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1000Mi"}},
                 {"name": "unused", "emptyDir": {}}])],
         [pod("p", c, [APP])], inject={"p": ["reader"]},
         source="defaults: volume sources")
    c = "env-order"
    case(c, [sidecarset("env", c, containers=[
        {"name": "side", "image": "busybox:1.28", "env": [{"name": "B", "value": "own"}, {"name": "A", "value": "own"}],
         "transferEnv": [{"sourceContainerName": "app", "envNames": ["C", "B", "A"]}]}])],
         [pod("p", c, [{**APP, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]}])],
         inject={"p": ["side"]},
         source="env: the sidecar's own, IS_INJECTED, then transferred (sorted, own names kept)")
    c = "two-sets"
    case(c, [sidecarset("alpha", c, containers=[{"name": "alpha-before", "image": "busybox:1.28"},
                                                {"name": "alpha-after", "image": "busybox:1.28",
                                                 "podInjectPolicy": "AfterAppContainer",
                                                 "volumeMounts": [{"name": "alpha-v", "mountPath": "/alpha"}]}],
                        volumes=[{"name": "alpha-v", "emptyDir": {}}]),
             sidecarset("beta", c, containers=[{"name": "beta-before", "image": "busybox:1.28"}],
                        initContainers=[{"name": "beta-init", "image": "busybox:1.28"}])],
         [pod("p", c, [APP])], inject={"p": ["alpha-before", "alpha-after", "beta-before", "beta-init"]},
         source="several SidecarSets on one pod")
    c = "scoped-first"
    case(c, [sidecarset("a-cluster", c, containers=[{"name": "cluster-wide", "image": "busybox:1.28"}]),
             sidecarset("z-scoped", c, namespace="parity-scoped-first",
                        containers=[{"name": "namespaced", "image": "busybox:1.28"}])],
         [pod("p", c, [APP])], inject={"p": ["cluster-wide", "namespaced"]},
         source="SidecarSets of the pod's namespace before cluster-wide ones")
    c = "updated"
    case(c, [sidecarset("rolling", c, containers=[{"name": "sidecar1", "image": "centos:6.7", "command": ["sleep", "999d"]}])],
         [pod("after-update", c, [APP])],
         updates=[sidecarset("rolling", c, containers=[{"name": "sidecar1", "image": "centos:6.7"},
                                                       {"name": "added", "image": "busybox:1.28"}]),
                  sidecarset("rolling", c, containers=[{"name": "sidecar1", "image": "centos:7", "command": ["sleep", "999d"],
                                                        "upgradeStrategy": {"upgradeType": "ColdUpgrade"}}])],
         inject={"after-update": ["sidecar1"]},
         source="tutorial: update the sidecar's image (a new revision, defaulted again); an update adding a container")
    # ---- found by the randomized differential test (test_sidecarset_fuzz.py), shrunk -------------
    c = "fuzz-refused"
    busy = {"name": "x", "image": "busybox:1.28"}
    case(c, [sidecarset("request-above-limit", c, containers=[
        {**busy, "name": "r1", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]),
             sidecarset("same-mount-path", c, containers=[
                 {**busy, "name": "r2", "volumeMounts": [{"name": "v", "mountPath": "/v"},
                                                         {"name": "v", "mountPath": "/v", "subPath": "again"}]}],
                 volumes=[{"name": "v", "emptyDir": {}}]),
             sidecarset("env-name", c, containers=[{**busy, "name": "r3", "env": [{"name": "BAD NAME", "value": "1"}]}]),
             sidecarset("env-unnamed", c, initContainers=[{**busy, "name": "r4", "env": [{"name": "", "value": "1"}]}]),
             sidecarset("image-space", c, containers=[{**busy, "name": "r5", "image": " busybox"}]),
             sidecarset("subpath-absolute", c, containers=[
                 {**busy, "name": "r6", "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "/abs"}]}],
                 volumes=[{"name": "v", "emptyDir": {}}]),
             sidecarset("subpath-up", c, initContainers=[
                 {**busy, "name": "r7", "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "../up"}]}],
                 volumes=[{"name": "v", "emptyDir": {}}]),
             sidecarset("item-path-up", c, containers=[{**busy, "name": "r8"}],
                        volumes=[{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../escape"}]}}]),
             sidecarset("share-capital", c, containers=[{**busy, "name": "r9", "shareVolumePolicy": {"type": "Enabled"}}]),
             sidecarset("kept", c, containers=[{**busy, "name": "kept"}])],
         [pod("p", c, [APP])], inject={"p": ["kept"]},
         refused=[f"{c}-{n}" for n in ("request-above-limit", "same-mount-path", "env-name", "env-unnamed",
                                       "image-space", "subpath-absolute", "subpath-up", "item-path-up",
                                       "share-capital")],
         source="differential test: Kubernetes' pod validation, which upstream runs on a SidecarSet's containers")
    c = "fuzz-accepted"
    case(c, [sidecarset("loose", c,
                        containers=[{"name": "mesh", "image": "envoy:1.0", "transferEnv": [
                            {"envNames": ["TZ"]}, {"sourceContainerName": "app"},
                            {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['Main-Container']"}},
                             "envName": "TZ"}]}],
                        initContainers=[{"name": "prepare", "image": "busybox:1.28", "podInjectPolicy": "Middle",
                                         "shareVolumePolicy": {"type": "sometimes"},
                                         "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                                          "envName": "TZ"}]}])],
         [pod("p", c, [{**APP, "env": [{"name": "TZ", "value": "UTC"}]}], annotations={"main-container": "app"})],
         inject={"p": ["mesh", "prepare"]},
         source="differential test: a transferEnv without a source or a variable copies nothing; an init "
                "container's podInjectPolicy, shareVolumePolicy and transferEnv are not checked")
    c = "unmatched"
    case(c, [sidecarset("unmatched", c, containers=[{"name": "never", "image": "busybox:1.28"}])],
         [pod("other", "not-this-case", [APP])], inject={"other": []},
         source="a pod no SidecarSet selects is left alone")

    # ---- HotUpgrade, patchPodMetadata, native sidecars, admission rules (upstream's source) --
    hot = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "openkruise/hotupgrade-sample:empty"}
    c = "hot-upgrade"
    case(c, [sidecarset("mesh", c, containers=[
        {"name": "sidecar", "image": "openkruise/hotupgrade-sample:sidecarv1", "upgradeStrategy": hot,
         "env": [{"name": "LISTEN_PORT", "value": "9000"}], "transferEnv": [{"sourceContainerName": "app", "envName": "TZ"}],
         "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "/migrate.sh"]}}}},
        {"name": "cold", "image": "busybox:1.28", "podInjectPolicy": "AfterAppContainer"}])],
         [pod("p", c, [{**APP, "env": [{"name": "TZ", "value": "UTC"}]}]),
          pod("recorded", c, [APP], annotations={
              "kruise.io/sidecarset-working-hotupgrade-container": '{"other":"other-2"}'})],
         inject={"p": ["sidecar-1", "sidecar-2", "cold"], "recorded": ["sidecar-1", "sidecar-2", "cold"]},
         source="sidecarset_hotupgrade.go: <name>-1 and <name>-2 (hotUpgradeEmptyImage), version annotations")
    c = "hot-upgrade-two-sets"
    case(c, [sidecarset("b-mesh", c, containers=[{"name": "b-proxy", "image": "envoy:1.0", "upgradeStrategy": hot,
                                                  "shareVolumePolicy": {"type": "enabled"},
                                                  "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]}],
                        volumes=[{"name": "certs", "secret": {"secretName": "mesh-certs"}}]),
             sidecarset("a-agent", c, containers=[{"name": "a-agent", "image": "agent:1", "upgradeStrategy": hot,
                                                   "podInjectPolicy": "AfterAppContainer"}],
                        patchPodMetadata=[{"annotations": {"kruise.io/sidecarset-working-hotupgrade-container":
                                                           '{"zz":"zz-1"}'}}])],
         [pod("p", c, [{**APP, "volumeMounts": [{"name": "www", "mountPath": "/www"}]}],
              volumes=[{"name": "www", "emptyDir": {}}])],
         inject={"p": ["b-proxy-1", "b-proxy-2", "a-agent-1", "a-agent-2"]},
         source="sidecarset.go: two SidecarSets' hot-upgrade records in one map, patched by patchPodMetadata first")
    case(c + "-no-empty", [sidecarset("mesh", c + "-no-empty", containers=[
        {"name": "proxy", "image": "envoy:1.0", "upgradeStrategy": {"upgradeType": "HotUpgrade"}}])],
         [], inject={}, refused_pods=[pod("p", c + "-no-empty", [APP])],
         source="validating accepts HotUpgrade without hotUpgradeEmptyImage; the apiserver refuses <name>-2's empty image")
    c = "hot-upgrade-native"
    case(c, [sidecarset("native-hot", c, updateStrategy={"type": "NotUpdate"},
                        initContainers=[{"name": "proxy", "image": "envoy:1.0", "restartPolicy": "Always",
                                         "upgradeStrategy": hot},
                                        {"name": "plain-hot", "image": "busybox:1.28", "upgradeStrategy": hot}])],
         [pod("p", c, [APP])], inject={"p": ["plain-hot", "proxy-1", "proxy-2"]},
         source="sidecarset.go: only a native sidecar init container is hot-upgraded")
    c = "native-refused"
    case(c, [sidecarset("rolling", c, initContainers=[{"name": "proxy", "image": "envoy:1.0", "restartPolicy": "Always"}]),
             sidecarset("explicit", c, updateStrategy={"type": "RollingUpdate", "maxUnavailable": 1},
                        initContainers=[{"name": "proxy2", "image": "envoy:1.0", "restartPolicy": "Always"}]),
             sidecarset("not-update", c, updateStrategy={"type": "NotUpdate"},
                        initContainers=[{"name": "proxy3", "image": "envoy:1.0", "restartPolicy": "Always"}])],
         [pod("p", c, [APP])], inject={"p": ["proxy3"]},
         refused=["native-refused-rolling", "native-refused-explicit"],
         source="validating: a native sidecar under a RollingUpdate strategy is refused")
    c = "native-rules"
    probe = {"tcpSocket": {"port": 8080}}
    case(c, [sidecarset("container-restart", c, containers=[{"name": "c-restart", "image": "busybox:1.28",
                                                              "restartPolicy": "Always"}]),
             sidecarset("init-onfailure", c, updateStrategy={"type": "NotUpdate"},
                        initContainers=[{"name": "i-onfailure", "image": "busybox:1.28", "restartPolicy": "OnFailure"}]),
             sidecarset("init-probe", c, initContainers=[{"name": "i-probe", "image": "busybox:1.28",
                                                          "readinessProbe": probe}]),
             sidecarset("native-probe", c, updateStrategy={"type": "NotUpdate"}, initContainers=[
                 {"name": "n-probe", "image": "envoy:1.0", "restartPolicy": "Always", "readinessProbe": probe,
                  "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}])],
         [pod("p", c, [APP])], inject={"p": ["n-probe"]},
         refused=["native-rules-container-restart", "native-rules-init-onfailure", "native-rules-init-probe"],
         source="validating (Kubernetes 1.30's pod rules): restartPolicy only on init containers and only Always; "
                "probes and lifecycle only on a native sidecar")
    c = "patch-metadata"
    case(c, [sidecarset("patch", c, containers=[{"name": "side", "image": "busybox:1.28", "transferEnv": [
        {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['main-container']"}},
         "envName": "TZ"}]}],
        patchPodMetadata=[{"annotations": {"main-container": "app", "kept": "sidecarset"}},
                          {"annotations": {"overwritten": "sidecarset"}, "patchPolicy": "Overwrite"},
                          {"annotations": {"merged": '{"a":1,"c":{"d":null,"e":"<x>"}}', "fresh": '{"z":1}'},
                           "patchPolicy": "MergePatchJson"}])],
         [pod("p", c, [{**APP, "env": [{"name": "TZ", "value": "UTC"}]}],
              annotations={"kept": "pod", "overwritten": "pod", "merged": '{"b":2, "a":0, "n":1.50}'}),
          pod("bare", c, [APP]), pod("array-doc", c, [APP], annotations={"merged": "[1]"})],
         inject={"p": ["side"], "bare": ["side"], "array-doc": ["side"]},
         refused_pods=[pod("not-json", c, [APP], annotations={"merged": "plain text"}),
                       pod("array", c, [APP], annotations={"merged": "[1]", "fresh": "null"})],
         source="util.go PatchPodMetadata: Retain, Overwrite, MergePatchJson (the install's AllAlpha allows no "
                "whitelist); a pod value that is not JSON, or null, refuses the pod")
    c = "patch-whitelist"
    allowed_patch = {"annotations": {"mesh.example/config": '{"on":true}'}, "patchPolicy": "MergePatchJson"}
    case(c, [sidecarset("allowed", c, containers=[{"name": "allowed", "image": "busybox:1.28"}],
                        patchPodMetadata=[allowed_patch]),
             {**sidecarset("labelled", c, containers=[{"name": "labelled", "image": "busybox:1.28"}],
                           patchPodMetadata=[{"annotations": {"team.example/owner": "mesh"}, "patchPolicy": "Retain"}]),
              "metadata": {"name": f"{c}-labelled", "labels": {"team": "mesh"}}},
             sidecarset("unlisted", c, containers=[{"name": "unlisted", "image": "busybox:1.28"}],
                        patchPodMetadata=[{"annotations": {"other.example/x": "1"}}]),
             sidecarset("unlabelled", c, containers=[{"name": "unlabelled", "image": "busybox:1.28"}],
                        patchPodMetadata=[{"annotations": {"team.example/owner": "db"}}])],
         [pod("p", c, [APP], annotations={"mesh.example/config": '{"on":false,"port":80}'})],
         inject={"p": ["allowed", "labelled"]},
         refused=["patch-whitelist-unlisted", "patch-whitelist-unlabelled"],
         configuration={"SidecarSet_PatchPodMetadata_WhiteList": json.dumps({"rules": [
             {"allowedAnnotationKeyExprs": ["^mesh\\.example/"]},
             {"selector": {"matchLabels": {"team": "mesh"}}, "allowedAnnotationKeyExprs": ["^team\\.example/owner$"]}]})},
         source="util.go ValidateSidecarSetPatchMetadataWhitelist: kruise-configuration rules, selector on labels")
    c = "patch-conflict"
    case(c, [sidecarset("first", c, containers=[{"name": "first", "image": "busybox:1.28"}],
                        patchPodMetadata=[{"annotations": {"shared": '{"a":1}'}, "patchPolicy": "MergePatchJson"}]),
             sidecarset("merges-too", c, containers=[{"name": "merges-too", "image": "busybox:1.28"}],
                        patchPodMetadata=[{"annotations": {"shared": '{"b":2}'}, "patchPolicy": "MergePatchJson"}]),
             sidecarset("overwrites", c, containers=[{"name": "overwrites", "image": "busybox:1.28"}],
                        patchPodMetadata=[{"annotations": {"shared": "x"}, "patchPolicy": "Overwrite"}])],
         [pod("p", c, [APP])], inject={"p": ["first", "merges-too"]}, refused=["patch-conflict-overwrites"],
         source="validating: an annotation overwritten by one of two SidecarSets on one pod")
    c = "conflicts"
    case(c, [sidecarset("a", c, containers=[{"name": "shared-name", "image": "busybox:1.28",
                                             "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                        initContainers=[{"name": "init-shared", "image": "busybox:1.28"}],
                        volumes=[{"name": "cfg", "configMap": {"name": "c"}}]),
             sidecarset("same-volume", c, containers=[{"name": "b", "image": "busybox:1.28",
                                                       "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                        volumes=[{"name": "cfg", "configMap": {"name": "c"}}]),
             {**sidecarset("init-as-container", c, containers=[{"name": "init-shared", "image": "busybox:1.28"}]),
              "spec": {"selector": {"matchLabels": {"parity": c, "tier": "other"}},  # overlaps a's, not the pod
                       "containers": [{"name": "init-shared", "image": "busybox:1.28"}]}},
             sidecarset("other-volume", c, containers=[{"name": "d", "image": "busybox:1.28",
                                                        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                        volumes=[{"name": "cfg", "emptyDir": {}}]),
             sidecarset("same-container", c, containers=[{"name": "shared-name", "image": "busybox:1.29"}]),
             sidecarset("same-init", c, initContainers=[{"name": "init-shared", "image": "busybox:1.29"}]),
             {**sidecarset("unsatisfiable", c, containers=[{"name": "shared-name", "image": "busybox:1.29"}]),
              "spec": {"selector": {"matchLabels": {"parity": c, "tier": "never"},
                                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["never"]}]},
                       "containers": [{"name": "shared-name", "image": "busybox:1.29"}]}}],
         [pod("p", c, [APP])], inject={"p": ["shared-name", "init-shared", "b"]},
         refused=["conflicts-other-volume", "conflicts-same-container", "conflicts-same-init", "conflicts-unsatisfiable"],
         source="validating: container, init container and volume names across SidecarSets that may share a pod "
                "(upstream's overlap test is conservative: a selector no pod satisfies still overlaps)")
    c = "admission"
    case(c, [sidecarset("v1.0", c, containers=[{"name": "dotted", "image": "busybox:1.28"}]),
             sidecarset("revision", c, containers=[{"name": "rev", "image": "busybox:1.28"}],
                        injectionStrategy={"revision": {"customVersion": "v1"}}),
             sidecarset("revision-empty", c, containers=[{"name": "rev2", "image": "busybox:1.28"}],
                        injectionStrategy={"revision": {"policy": "Always"}}),
             sidecarset("partition-selector", c, containers=[{"name": "ps", "image": "busybox:1.28"}],
                        updateStrategy={"partition": 1, "selector": {"matchLabels": {"a": "b"}}}),
             sidecarset("declares-injected", c, containers=[
                 {"name": "declares", "image": "busybox:1.28", "env": [{"name": "IS_INJECTED", "value": "false"}]}]),
             sidecarset("not-update", c, containers=[{"name": "lenient", "image": "busybox:1.28"}],
                        updateStrategy={"type": "NotUpdate", "partition": 1, "selector": {"matchLabels": {"a": "b"}}})],
         [pod("p", c, [APP])], inject={"p": ["declares", "lenient"]},
         refused=["admission-v1.0", "admission-revision", "admission-revision-empty", "admission-partition-selector"],
         source="validating: name pattern, injectionStrategy.revision, updateStrategy; IS_INJECTED may be declared")
    return cases


CASES = _cases()

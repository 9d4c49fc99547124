"""What an OpenKruise install is called: upstream's names, labels, ports and webhook paths, kept
here once so that the manager, the chart's tests, kruisectl and the harness all mean the same
objects, and kruisectl works on an upstream install unchanged."""

from __future__ import annotations

NAMESPACE = "kruise-system"
DEPLOYMENT = "kruise-controller-manager"
DAEMONSET = "kruise-daemon"
LEASE = "kruise-manager"  # the election's Lease (controller-runtime's leader election id)
SERVICE_ACCOUNT = "kruise-manager"
SECRET = "kruise-webhook-certs"
SERVICE = "kruise-webhook-service"
MUTATING_CONFIGURATION = "kruise-mutating-webhook-configuration"
VALIDATING_CONFIGURATION = "kruise-validating-webhook-configuration"
MANAGER_LABELS = {"control-plane": "controller-manager"}
MANAGER_SELECTOR = "control-plane=controller-manager"

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"

WEBHOOK_PORT = 9876
MUTATE_POD_PATH = "/mutate-pod"
VALIDATE_SIDECARSET_PATH = "/validate-apps-kruise-io-v1alpha1-sidecarset"
MUTATE_SIDECARSET_PATH = "/mutate-apps-kruise-io-v1alpha1-sidecarset"
VALIDATE_POD_PATH = "/validate-pod"  # pod delete and pods/eviction (WorkloadSpread's deletingPods)
VALIDATE_WORKLOADSPREAD_PATH = "/validate-apps-kruise-io-v1alpha1-workloadspread"

WORKLOADSPREADS_PATH = "/apis/apps.kruise.io/v1alpha1/workloadspreads"  # namespaced: .../namespaces/{ns}/workloadspreads
MATCHED_WORKLOADSPREAD_ANNOTATION = "apps.kruise.io/matched-workloadspread"
POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

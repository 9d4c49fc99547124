"""kruisectl: operations toolkit for OpenKruise's control plane (kruise-manager)."""

__version__ = "0.1.0"

# Upstream OpenKruise names; kruisectl works against any cluster that uses them.
DEFAULT_NAMESPACE = "kruise-system"
LEASE_NAME = "kruise-manager"
SECRET_NAME = "kruise-webhook-certs"
SERVICE_NAME = "kruise-webhook-service"
DEPLOYMENT_NAME = "kruise-controller-manager"
MUTATING_WEBHOOK_CONFIGURATION = "kruise-mutating-webhook-configuration"
VALIDATING_WEBHOOK_CONFIGURATION = "kruise-validating-webhook-configuration"
MANAGER_LABELS = {"control-plane": "controller-manager"}
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"

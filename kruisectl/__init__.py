"""kruisectl: operations toolkit for OpenKruise's control plane (kruise-manager)."""

__version__ = "0.1.0"

"""A replica's own Prometheus metrics, read through the apiserver's pod proxy (the caller's
credentials, no port-forward, no route to the pod needed), parsed with prometheus_client's
text parser."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

DEFAULT_METRICS_PORT = 8080  # upstream's and this chart's --metrics-addr


def metrics_port(pod: dict) -> int:
    """The container port named ``metrics``, else the default."""
    return next((p.get("containerPort") for c in pod["spec"].get("containers") or []
                 for p in c.get("ports") or [] if p.get("name") == "metrics"), DEFAULT_METRICS_PORT)


@dataclass
class Scrape:
    pod: str
    samples: list[tuple[str, dict, float]] = field(default_factory=list)  # (name, labels, value)
    error: str | None = None

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(v for n, l, v in self.samples if n == name and all(l.get(k) == x for k, x in labels.items()))

    def select(self, name: str) -> list[tuple[dict, float]]:
        return [(l, v) for n, l, v in self.samples if n == name]


def parse(text: str) -> list[tuple[str, dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def replica_text(client, namespace: str, pod: dict, timeout: float) -> str:
    """One replica's /metrics exposition (kubekit.api.ApiError when it cannot be read)."""
    from kubekit import paths

    return client.get_text(paths.pod_proxy(namespace, pod["metadata"]["name"], metrics_port(pod), "metrics"), timeout)


def replicas(client, namespace: str, pods: list[dict], timeout: float) -> dict[str, Scrape]:
    """Every pod's metrics, read in parallel; a pod that cannot be read carries its error."""
    from .errors import describe_api_error

    def one(pod: dict) -> Scrape:
        scrape = Scrape(pod["metadata"]["name"])
        try:
            scrape.samples = parse(replica_text(client, namespace, pod, timeout))
        except Exception as err:  # noqa: BLE001 - recorded per replica, never raised
            scrape.error = describe_api_error(err)
        return scrape

    if not pods:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(pods), 8)) as pool:
        return {s.pod: s for s in pool.map(one, pods)}

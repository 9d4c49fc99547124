"""Is the kruise webhook servable? Service and endpoints, caBundle against the Secret's CA, the
serving certificate's names and expiry, the pod webhooks' exclusions and policies, and a TLS
handshake plus /healthz to each endpoint that is reachable from where kruisectl runs.

Known failure texts are translated into a cause and a fix (see ``explain``).
"""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
import time

import requests
import requests.adapters

from .doctor import every_pod_webhook, exclusion_fix, excludes_namespace
from .findings import Finding
from .inventory import Inventory
from .status import build, serving_certificate

# (text in the error, cause, fix)
KNOWN_FAILURES = (
    ("connection refused", "no process listens on the endpoint (replica down or not ready)",
     "kruisectl status; check the replica's logs and readiness"),
    ("no endpoints", "the Service has no ready endpoint: no ready replica",
     "kruisectl status; bring a replica back"),
    ("unknown authority", "the caBundle does not match the serving certificate (stale caBundle)",
     "restart a manager replica so it re-patches the caBundle"),
    ("certificate verify failed", "the serving certificate is not signed by the CA in the Secret",
     "restart a manager replica so it re-issues its certificate"),
    ("deadline exceeded", "the webhook did not answer in time (hung replica)",
     "look at the replica's /healthz; the liveness probe should restart it"),
    ("timed out", "the webhook did not answer in time (hung replica)",
     "look at the replica's /healthz; the liveness probe should restart it"),
    ("service not found", "the webhook's Service does not exist", "reinstall the chart or recreate kruise-webhook-service"),
    ("forbidden", "kruisectl's credentials may not read or create this", "use a kubeconfig with more rights"),
)


def explain(error: str) -> tuple[str, str]:
    """(cause, fix) for a failure text; the text itself when it is not a known one."""
    lowered = error.lower()
    for marker, cause, fix in KNOWN_FAILURES:
        if marker in lowered:
            return cause, fix
    return error, ""


def _service_dns(inv: Inventory) -> list[str]:
    base = f"{inv.names.service}.{inv.names.namespace}.svc"
    return [base, f"{base}.cluster.local"]


def check_service(inv: Inventory, report: dict) -> list[Finding]:
    if inv.service is None:
        cause, fix = explain("service not found")
        return [Finding("service", "error", f"Service {inv.names.namespace}/{inv.names.service} not found: {cause}", fix)]
    endpoints = report["webhook"]["readyEndpoints"]
    if not endpoints:
        cause, fix = explain("no endpoints")
        return [Finding("service", "error", cause, fix, {"readyEndpoints": []})]
    return [Finding("service", "ok", f"{len(endpoints)} ready endpoint(s)", evidence={"readyEndpoints": endpoints})]


def check_ca_bundles(inv: Inventory, report: dict) -> list[Finding]:
    ca = serving_certificate(inv.secret)["ca"]
    findings = []
    for kind, configuration, name in (("mutating", inv.mutating, inv.names.mutating),
                                      ("validating", inv.validating, inv.names.validating)):
        if configuration is None:
            findings.append(Finding(f"cabundle/{kind}", "error", f"{name} not found", "reinstall the chart"))
            continue
        for webhook in configuration.get("webhooks") or []:
            bundle = (webhook.get("clientConfig") or {}).get("caBundle")
            check = f"cabundle/{webhook['name']}"
            if not bundle:
                findings.append(Finding(check, "error", f"{name}: {webhook['name']} has an empty caBundle",
                                        "restart a manager replica so it patches the caBundle (kruise#374)"))
            elif ca is None:
                findings.append(Finding(check, "warning", f"no CA in Secret {inv.names.secret} to compare with"))
            elif base64.b64decode(bundle).strip() != ca.strip():
                cause, fix = explain("unknown authority")
                findings.append(Finding(check, "error", f"{name}: {webhook['name']}: {cause}", fix))
            else:
                findings.append(Finding(check, "ok", f"{name}: {webhook['name']} trusts the Secret's CA"))
    return findings


def check_certificate_names(inv: Inventory, report: dict) -> list[Finding]:
    cert = serving_certificate(inv.secret)
    if cert["notAfter"] is None:
        return [Finding("serving-cert", "error", f"no serving certificate in Secret {inv.names.secret}",
                        "the manager writes it on start; check its logs")]
    wanted = _service_dns(inv)[0]
    evidence = {"dnsNames": cert["dnsNames"], "notAfter": cert["notAfter"].isoformat(),
                "expiresInDays": report["webhook"]["certExpiresInDays"]}
    if wanted not in cert["dnsNames"]:
        return [Finding("serving-cert", "error", f"the serving certificate does not name {wanted}",
                        "delete the Secret's certificate so the manager issues a new one", evidence)]
    return [Finding("serving-cert", "ok", f"names {wanted}; expires in {report['webhook']['certExpiresInDays']:g} days",
                    evidence=evidence)]


def check_pod_webhooks(inv: Inventory, report: dict) -> list[Finding]:
    findings = []
    wanted = list(dict.fromkeys(("kube-system", inv.names.namespace)))
    unknown = inv.denied("namespace")
    for webhook in every_pod_webhook(inv):
        evidence = {"failurePolicy": webhook.get("failurePolicy", "Fail"), "timeoutSeconds": webhook.get("timeoutSeconds", 10),
                    "namespaceSelector": webhook.get("namespaceSelector")}
        text = f"{webhook['name']}: failurePolicy {evidence['failurePolicy']}, timeout {evidence['timeoutSeconds']}s"
        check = f"pod-webhook/{webhook['name']}"
        if unknown:
            findings.append(Finding(check, "info", f"{text}; whether it skips {', '.join(wanted)}: unknown ({unknown})",
                                    "grant that permission, or run the check as a user who has it", evidence))
            continue
        not_skipped = [ns for ns in wanted if not excludes_namespace(webhook, inv.namespace_labels(ns))]
        evidence["skips"] = [ns for ns in wanted if ns not in not_skipped]
        if not_skipped:
            findings.append(Finding(check, "error", f"{text}; does not skip {', '.join(not_skipped)}",
                                    "; ".join(dict.fromkeys(exclusion_fix(inv, webhook, ns) for ns in not_skipped)),
                                    evidence))
        else:
            findings.append(Finding(check, "ok", f"{text}; skips {', '.join(wanted)}", evidence=evidence))
    return findings


class _ServiceNameAdapter(requests.adapters.HTTPAdapter):
    """Connect to an endpoint's address but verify the certificate for the Service's name."""

    def __init__(self, hostname: str):
        self._hostname = hostname
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = self._hostname
        kwargs["server_hostname"] = self._hostname
        super().init_poolmanager(*args, **kwargs)


def probe_endpoints(inv: Inventory, report: dict, port: int, timeout: float = 2.0) -> list[Finding]:
    """HTTPS GET /healthz on each ready endpoint, verified against the Secret's CA under the
    Service's DNS name (as the apiserver would)."""
    ca = serving_certificate(inv.secret)["ca"]
    findings = []
    if ca is None:
        return [Finding("endpoint", "warning", "no CA in the Secret: endpoints not probed")]
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as ca_file:
        ca_file.write(ca)
        ca_file.flush()
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE / proxies must not apply
        session.mount("https://", _ServiceNameAdapter(_service_dns(inv)[0]))
        for address in report["webhook"]["readyEndpoints"]:
            url = f"https://{address}:{port}/healthz"
            started = time.monotonic()
            try:
                response = session.get(url, timeout=timeout, verify=ca_file.name)
                latency_ms = round((time.monotonic() - started) * 1000, 1)
                level = "ok" if response.status_code == 200 else "error"
                findings.append(Finding(f"endpoint/{address}", level,
                                        f"TLS ok, /healthz {response.status_code} in {latency_ms} ms",
                                        "" if level == "ok" else "look at the replica's logs", {"latencyMs": latency_ms}))
            except requests.exceptions.SSLError as err:
                cause, fix = explain(str(err))
                findings.append(Finding(f"endpoint/{address}", "error", cause, fix))
            except requests.RequestException as err:
                text = str(err)
                if "No route to host" in text or "Network is unreachable" in text:
                    findings.append(Finding(f"endpoint/{address}", "info",
                                            "not reachable from where kruisectl runs (off-cluster?): not probed"))
                    continue
                cause, fix = explain(text)
                findings.append(Finding(f"endpoint/{address}", "error", cause, fix))
    return findings


# Checks whose errors are risks of the configuration (which namespaces the pod webhooks
# reach), not reasons the apiserver cannot call the webhook.
CONFIGURATION_CHECKS = ("pod-webhook/",)


def servable_verdict(findings: list[Finding]) -> str:
    """"NOT servable" only when an error stops the apiserver calling the webhook; an error in
    what the webhooks cover leaves it servable, and says so."""
    errors = [f for f in findings if f.level == "error"]
    configuration = [f for f in errors if f.check.startswith(CONFIGURATION_CHECKS)]
    if len(configuration) < len(errors):
        return "NOT servable"
    return f"servable, with {len(configuration)} configuration error(s)" if configuration else "servable"


# Each check's id and the reads its verdict rests on: when one was refused the verdict is unknown.
NEEDS = {"service": ("service", "endpoint_slices"), "cabundle": ("mutating", "validating", "secret"),
         "serving-cert": ("secret",), "pod-webhook": ("mutating", "validating"), "endpoint": ("secret", "endpoint_slices")}


def check(inv: Inventory, port: int, timeout: float = 2.0) -> list[Finding]:
    report = build(inv, dt.datetime.now(dt.timezone.utc))
    findings = []
    for name, run in (("service", check_service), ("cabundle", check_ca_bundles),
                      ("serving-cert", check_certificate_names), ("pod-webhook", check_pod_webhooks),
                      ("endpoint", lambda i, r: probe_endpoints(i, r, port, timeout))):
        denied = inv.denied(*NEEDS[name])
        if denied:
            findings.append(Finding(name, "info", f"unknown ({denied})", "grant that permission, or run the check as "
                                    "a user who has it"))
        else:
            findings += run(inv, report)
    return findings

"""The webhook's serving credential: a CA and a serving certificate in Secret
``kruise-webhook-certs`` (upstream's keys), copied to the cert dir and trusted by the
webhook configurations through their caBundle.

Every replica runs the same loop and all of them converge on one CA: the Secret is created
only if absent and re-read on AlreadyExists/Conflict, so the first writer wins and the rest
adopt its keys. Rotation keeps admissions flowing:

- the serving certificate is re-issued from the same CA ``renew_before`` its expiry; every
  replica picks it up from the Secret, and the caBundle does not change;
- a CA near its own expiry is rotated in two steps: the new CA joins the bundle (the old one
  stays), the caBundles are patched, and only then is a serving certificate issued from it.

In ``external`` mode (e.g. cert-manager fills the Secret and injects the caBundle) the
Secret is only read; a caBundle that does not hold the serving CA is reported (log, metric,
readiness reason) instead of being fixed or crash-looping.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import metrics
from .informer import Informer
from kubekit import paths
from kubekit.api import ApiError, Client

if TYPE_CHECKING:
    from .options import Options

log = logging.getLogger("manager.certs")

SECRET_KEYS = ("ca-cert.pem", "ca-key.pem", "cert.pem", "key.pem", "tls.crt", "tls.key")


# ---- pure certificate work -------------------------------------------------------------
def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(validity_s: float, name: str = "kruise-webhook-ca", now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = (now or _utcnow()) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(seconds=validity_s + 300))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_serving(ca_cert_pem: bytes, ca_key_pem: bytes, dns_names: list[str], validity_s: float,
                  now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names``, never outliving its CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or _utcnow()) - dt.timedelta(minutes=5)
    end = min(start + dt.timedelta(seconds=validity_s + 300), ca_cert.not_valid_after_utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def split_bundle(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # InvalidSignature, ValueError, TypeError
        return False


def seconds_left(cert: x509.Certificate, now: dt.datetime | None = None) -> float:
    return (cert.not_valid_after_utc - (now or _utcnow())).total_seconds()


def bundle_holds(bundle_pem: bytes, ca: x509.Certificate) -> bool:
    return any(c == ca for c in split_bundle(bundle_pem))


def service_dns_names(service: str, namespace: str) -> list[str]:
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", "localhost"]


def write_atomically(directory: str, files: dict[str, bytes]) -> bool:
    """Write each changed file by rename, so a reader never sees half a PEM. True if any changed."""
    os.makedirs(directory, exist_ok=True)
    changed = False
    for name in ("ca-cert.pem", "ca-key.pem", "key.pem", "tls.key", "cert.pem", "tls.crt"):  # keys before certs
        if name not in files:
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as current:
                if current.read() == files[name]:
                    continue
        except OSError:
            pass
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        with os.fdopen(handle, "wb") as out:
            out.write(files[name])
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        changed = True
    return changed


# ---- the rotation decision ---------------------------------------------------------------
KEEP = "keep"                      # the Secret is fine as it is
NEW_CREDENTIAL = "new-credential"  # something is missing: a new CA and serving certificate
ADD_SIGNER = "add-signer"          # CA rotation step 1: a new CA joins the bundle, the old stays
REISSUE = "reissue"                # a serving certificate from the current signer (renewal, step 2)
WAIT_FOR_BUNDLES = "wait-for-bundles"  # step 2 must wait until every caBundle trusts the signer


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


def covers(cert: x509.Certificate, dns_names: list[str]) -> bool:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(dns_names) <= set(names.get_values_for_type(x509.DNSName))


def decide(data: dict[str, bytes], *, now: dt.datetime, dns_names: list[str], options: "CertOptions",
           trusted: list[x509.Certificate]) -> Decision:
    """What the self-signed Secret needs at ``now``; ``trusted`` are the CAs every webhook's
    caBundle holds. No I/O and no clock of its own, so every state is testable."""
    cas = split_bundle(data.get("ca-cert.pem", b""))
    serving = split_bundle(data.get("cert.pem", b""))
    if not cas or not data.get("ca-key.pem") or not serving or not data.get("key.pem"):
        return Decision(NEW_CREDENTIAL, "the secret lacks a CA, its key, a serving certificate or its key")
    signer, serving_cert = cas[0], serving[0]
    if seconds_left(signer, now) < options.renew_before_s:
        return Decision(ADD_SIGNER, f"the CA expires {signer.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    if not issued_by(serving_cert, signer):
        if not any(ca == signer for ca in trusted):
            return Decision(WAIT_FOR_BUNDLES, "a new CA is not yet in every caBundle")
        return Decision(REISSUE, "the serving certificate is not from the newest CA")
    if seconds_left(serving_cert, now) < options.renew_before_s:
        return Decision(REISSUE, f"the serving certificate expires {serving_cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    if not covers(serving_cert, dns_names):
        return Decision(REISSUE, f"the serving certificate does not name {', '.join(dns_names)}")
    return Decision(KEEP, "valid")


def secret_data(ca: bytes, ca_key: bytes, cert: bytes, key: bytes) -> dict[str, bytes]:
    """Upstream's keys: the serving pair twice (cert.pem/key.pem and tls.crt/tls.key)."""
    return {"ca-cert.pem": ca, "ca-key.pem": ca_key, "cert.pem": cert, "key.pem": key, "tls.crt": cert, "tls.key": key}


def carry_out(decision: Decision, data: dict[str, bytes], *, now: dt.datetime, dns_names: list[str],
              options: "CertOptions") -> dict[str, bytes] | None:
    """The Secret data a decision asks for (new keys are made here); None to leave it alone."""
    pem = lambda certs: b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)  # noqa: E731
    if decision.action == NEW_CREDENTIAL:
        ca_pem, ca_key = new_ca(options.ca_validity_s, now=now)
        return secret_data(ca_pem, ca_key, *issue_serving(ca_pem, ca_key, dns_names, options.cert_validity_s, now))
    live = [c for c in split_bundle(data["ca-cert.pem"]) if seconds_left(c, now) > 0]
    if decision.action == ADD_SIGNER:
        ca_pem, ca_key = new_ca(options.ca_validity_s, now=now)
        return secret_data(ca_pem + pem(live), ca_key, data["cert.pem"], data["key.pem"])
    if decision.action == REISSUE:
        signer = split_bundle(data["ca-cert.pem"])[0]
        cert, key = issue_serving(pem([signer]), data["ca-key.pem"], dns_names, options.cert_validity_s, now)
        return secret_data(pem(live), data["ca-key.pem"], cert, key)
    return None


@dataclass
class CertOptions:
    """What the credential loop needs of the manager's options; no defaults of its own (they
    are :class:`~manager.options.Options`'), so :meth:`from_options` is how the manager makes
    one and a table test spells every field out."""

    namespace: str
    secret: str
    service: str
    cert_dir: str
    configurations: tuple[tuple[str, str], ...]  # (kind plural, name)
    mode: str  # "self-signed" or "external"
    ca_validity_s: float
    cert_validity_s: float
    renew_before_s: float

    @classmethod
    def from_options(cls, o: "Options") -> "CertOptions":
        return cls(namespace=o.leader_election_namespace, secret=o.secret_name, service=o.service_name,
                   cert_dir=o.webhook_cert_dir,
                   configurations=(("mutatingwebhookconfigurations", o.mutating_webhook_configuration),
                                   ("validatingwebhookconfigurations", o.validating_webhook_configuration)),
                   mode=o.webhook_cert_mode, ca_validity_s=o.webhook_ca_validity,
                   cert_validity_s=o.webhook_cert_validity, renew_before_s=o.webhook_cert_renew_before)


class CertManager:
    """Keeps the Secret, the cert dir and the caBundles in step; :attr:`problem` says why
    the credential is not ready (None when it is)."""

    def __init__(self, client: Client, options: CertOptions):
        self.client = client
        self.options = options
        self.dns_names = service_dns_names(options.service, options.namespace)
        self.secret_path = paths.secrets(options.namespace)
        self.problem: str | None = "credential not loaded yet"
        self.ca_bundle: bytes = b""
        self._next_check = 10.0  # seconds until a certificate is due for renewal (at most 10)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._informers: list[Informer] = []

    def ca_file(self) -> str:
        return os.path.join(self.options.cert_dir, "ca-cert.pem")

    # ---- the Secret ---------------------------------------------------------------------
    def _read_secret(self) -> dict | None:
        try:
            return self.client.get(f"{self.secret_path}/{self.options.secret}")
        except ApiError as err:
            if err.not_found:
                return None
            raise

    @staticmethod
    def _decode(secret: dict) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def sync_secret(self, trusted: list[x509.Certificate] | None = None) -> dict[str, bytes] | None:
        """Read (and in self-signed mode create, complete or rotate) the Secret. Races with
        other replicas end in a re-read, so everyone adopts the first writer's keys.
        ``trusted``: the CAs every caBundle holds now."""
        o = self.options
        for _ in range(5):
            secret = self._read_secret()
            data = self._decode(secret) if secret else {}
            if o.mode == "external":
                if not all(data.get(k) for k in ("ca-cert.pem", "tls.crt", "tls.key")) and not all(
                        data.get(k) for k in ("ca.crt", "tls.crt", "tls.key")):
                    self.problem = f"secret {o.namespace}/{o.secret} is missing or lacks ca.crt/ca-cert.pem, tls.crt, tls.key"
                    return None
                data.setdefault("ca-cert.pem", data.get("ca.crt", b""))
                return data
            now = _utcnow()
            decision = decide(data, now=now, dns_names=self.dns_names, options=o, trusted=trusted or [])
            wanted = carry_out(decision, data, now=now, dns_names=self.dns_names, options=o)
            if wanted is None:
                return data
            log.info("webhook secret: %s (%s)", decision.action, decision.reason)
            encoded = {k: base64.b64encode(v).decode() for k, v in wanted.items()}
            try:
                if secret is None:
                    self.client.request("POST", self.secret_path, timeout=5, body={
                        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": o.secret, "namespace": o.namespace}, "data": encoded})
                    log.info("created secret %s with a new CA", o.secret)
                else:
                    body = {**secret, "data": {**(secret.get("data") or {}), **encoded}}
                    self.client.request("PUT", f"{self.secret_path}/{o.secret}", timeout=5, body=body)
                    log.info("updated secret %s (new or rotated certificate)", o.secret)
                return wanted
            except ApiError as err:
                if err.status in (409,):  # AlreadyExists or Conflict: another replica won; adopt its keys
                    continue
                raise
        return None

    # ---- caBundles ----------------------------------------------------------------------
    def _configuration_path(self, plural: str, name: str | None = None) -> str:
        return paths.path("admissionregistration.k8s.io/v1", plural, name=name)

    def read_configurations(self) -> dict[tuple[str, str], dict | ApiError]:
        """Both webhook configurations, read once per sync (for the decision and the patch)."""
        configs: dict[tuple[str, str], dict | ApiError] = {}
        for plural, name in self.options.configurations:
            try:
                configs[(plural, name)] = self.client.get(self._configuration_path(plural, name))
            except ApiError as err:
                configs[(plural, name)] = err
        return configs

    @staticmethod
    def trusted_by_every_bundle(configs: dict[tuple[str, str], dict | ApiError]) -> list[x509.Certificate]:
        """The CAs that every webhook's caBundle holds (none when a configuration is unread or
        has no webhook)."""
        trusted: list[x509.Certificate] | None = None
        for config in configs.values():
            if isinstance(config, ApiError):
                return []
            for webhook in config.get("webhooks") or []:
                held = split_bundle(base64.b64decode(webhook.get("clientConfig", {}).get("caBundle", "")))
                trusted = held if trusted is None else [ca for ca in trusted if ca in held]
        return trusted or []

    def sync_ca_bundles(self, bundle: bytes, configs: dict[tuple[str, str], dict | ApiError]) -> str | None:
        """Patch (self-signed) or check (external) every webhook's caBundle; the problem, if any."""
        encoded = base64.b64encode(bundle).decode()
        signer = split_bundle(bundle)[0]
        problems = []
        for (plural, name), config in configs.items():
            if isinstance(config, ApiError):
                problems.append(f"{plural[:-1]} {name}: {'not found' if config.not_found else config}")
                continue
            ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": config["metadata"]["resourceVersion"]}]
            stale = []
            for i, webhook in enumerate(config.get("webhooks") or []):
                current = webhook.get("clientConfig", {}).get("caBundle", "")
                if self.options.mode == "external":
                    if not bundle_holds(base64.b64decode(current), signer):
                        stale.append(webhook["name"])
                elif current != encoded:
                    stale.append(webhook["name"])
                    ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
            metrics.CA_BUNDLE_MISMATCH.labels(name).set(1 if stale else 0)
            if not stale:
                continue
            if self.options.mode == "external":
                problems.append(f"caBundle of {name} ({', '.join(stale)}) does not hold the CA of secret "
                                f"{self.options.namespace}/{self.options.secret}: check the CA injector (e.g. cert-manager)")
                continue
            try:
                self.client.request("PATCH", self._configuration_path(plural, name), body=ops, timeout=5,
                                    content_type="application/json-patch+json")
                metrics.CA_BUNDLE_MISMATCH.labels(name).set(0)
                log.info("patched caBundle of %s (%s)", name, ", ".join(stale))
            except ApiError as err:
                problems.append(f"patching caBundle of {name}: {err}")
                self._wake.set()  # a conflict: try again at once
        return "; ".join(problems) or None

    # ---- the loop -----------------------------------------------------------------------
    def sync_once(self) -> None:
        try:
            configs = self.read_configurations()
            data = self.sync_secret(trusted=self.trusted_by_every_bundle(configs))
            if data is None:
                if self.options.mode != "external":
                    self.problem = "could not settle the webhook secret (conflicts)"
                return
            files = {k: v for k, v in data.items() if k in SECRET_KEYS}
            files.setdefault("tls.crt", data.get("cert.pem", b""))
            files.setdefault("tls.key", data.get("key.pem", b""))
            write_atomically(self.options.cert_dir, files)
            self.ca_bundle = data["ca-cert.pem"]
            serving = split_bundle(files["tls.crt"])
            if serving:
                metrics.CERT_EXPIRY.set(serving[0].not_valid_after_utc.timestamp())
            due = [seconds_left(c) - self.options.renew_before_s for c in serving[:1] + split_bundle(self.ca_bundle)[:1]]
            self._next_check = min([10.0, *due])
            self.problem = self.sync_ca_bundles(self.ca_bundle, configs)
        except ApiError as err:
            self.problem = f"webhook credential: {err}"
        except (ValueError, OSError) as err:
            self.problem = f"webhook credential: {err}"
        if self.problem:
            log.warning("webhook credential not ready: %s", self.problem)

    def start(self) -> "CertManager":
        wake = lambda *_: self._wake.set()  # noqa: E731
        o = self.options
        self._informers = [Informer(self.client, self.secret_path, on_change=wake, name="secret",
                                    fieldSelector=f"metadata.name={o.secret}").start()]
        for plural, name in o.configurations:
            self._informers.append(Informer(self.client, self._configuration_path(plural),
                                            on_change=wake, name=name, fieldSelector=f"metadata.name={name}").start())
        self.sync_once()
        threading.Thread(target=self._run, name="certs", daemon=True).start()
        return self

    def _run(self) -> None:
        # Wake on any change of the Secret or a configuration (a helm upgrade resetting the
        # caBundle), and at least every 10 s for expiry checks.
        while not self._stop.is_set():
            self._wake.wait(1.0 if self.problem else max(0.2, self._next_check))
            self._wake.clear()
            if not self._stop.is_set():
                self.sync_once()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for informer in self._informers:
            informer.stop()

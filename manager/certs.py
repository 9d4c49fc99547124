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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import metrics
from .informer import Informer
from .kube import ApiError, Client

log = logging.getLogger("manager.certs")

SECRET_KEYS = ("ca-cert.pem", "ca-key.pem", "cert.pem", "key.pem", "tls.crt", "tls.key")
HOUR = 3600.0


# ---- pure certificate work -------------------------------------------------------------
def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(validity_s: float, name: str = "kruise-webhook-ca") -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _utcnow() - dt.timedelta(minutes=5)
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


def issue_serving(ca_cert_pem: bytes, ca_key_pem: bytes, dns_names: list[str], validity_s: float) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names``, never outliving its CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    start = _utcnow() - dt.timedelta(minutes=5)
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


def seconds_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - _utcnow()).total_seconds()


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


@dataclass
class CertOptions:
    namespace: str
    secret: str
    service: str
    cert_dir: str
    configurations: tuple[tuple[str, str], ...]  # (kind plural, name)
    mode: str = "self-signed"  # or "external"
    ca_validity_s: float = 10 * 365 * 24 * HOUR
    cert_validity_s: float = 365 * 24 * HOUR
    renew_before_s: float = 30 * 24 * HOUR


class CertManager:
    """Keeps the Secret, the cert dir and the caBundles in step; :attr:`problem` says why
    the credential is not ready (None when it is)."""

    def __init__(self, client: Client, options: CertOptions):
        self.client = client
        self.options = options
        self.dns_names = service_dns_names(options.service, options.namespace)
        self.secret_path = f"/api/v1/namespaces/{options.namespace}/secrets"
        self.problem: str | None = "credential not loaded yet"
        self.ca_bundle: bytes = b""
        self._next_check = 10.0  # seconds until a certificate is due for renewal (at most 10)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._informers: list[Informer] = []

    @property
    def ready(self) -> bool:
        return self.problem is None

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

    def _fresh_data(self, data: dict[str, bytes]) -> dict[str, bytes] | None:
        """What the Secret should hold (None: it is fine as it is)."""
        o = self.options
        cas = split_bundle(data.get("ca-cert.pem", b""))
        serving = split_bundle(data.get("cert.pem", b""))
        if not cas or not data.get("ca-key.pem") or not serving or not data.get("key.pem"):
            ca_pem, ca_key = new_ca(o.ca_validity_s)
            cert, key = issue_serving(ca_pem, ca_key, self.dns_names, o.cert_validity_s)
            return self._data(ca_pem, ca_key, cert, key)
        signer = cas[0]
        live = [c for c in cas if seconds_left(c) > 0]
        if seconds_left(signer) < o.renew_before_s:
            # Step 1 of a CA rotation: a new signer joins the bundle; the old CA stays trusted.
            ca_pem, ca_key = new_ca(o.ca_validity_s)
            bundle = ca_pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in live)
            return self._data(bundle, ca_key, data["cert.pem"], data["key.pem"])
        serving_cert = serving[0]
        from_signer = issued_by(serving_cert, signer)
        if not from_signer or seconds_left(serving_cert) < o.renew_before_s or not self._covers(serving_cert):
            if not from_signer and not self._bundles_hold(signer):
                return None  # step 2 waits until every caBundle trusts the new signer
            signer_pem = signer.public_bytes(serialization.Encoding.PEM)
            cert, key = issue_serving(signer_pem, data["ca-key.pem"], self.dns_names, o.cert_validity_s)
            bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in live)
            return self._data(bundle, data["ca-key.pem"], cert, key)
        return None

    def _covers(self, cert: x509.Certificate) -> bool:
        try:
            names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            return False
        return set(self.dns_names) <= names

    @staticmethod
    def _data(ca: bytes, ca_key: bytes, cert: bytes, key: bytes) -> dict[str, bytes]:
        return {"ca-cert.pem": ca, "ca-key.pem": ca_key, "cert.pem": cert, "key.pem": key, "tls.crt": cert, "tls.key": key}

    def sync_secret(self) -> dict[str, bytes] | None:
        """Read (and in self-signed mode create, complete or rotate) the Secret. Races with
        other replicas end in a re-read, so everyone adopts the first writer's keys."""
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
            wanted = self._fresh_data(data)
            if wanted is None:
                return data
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
    def _configuration_path(self, plural: str, name: str) -> str:
        return f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}"

    def _bundles_hold(self, ca: x509.Certificate) -> bool:
        for plural, name in self.options.configurations:
            try:
                config = self.client.get(self._configuration_path(plural, name))
            except ApiError:
                return False
            for webhook in config.get("webhooks") or []:
                if not bundle_holds(base64.b64decode(webhook.get("clientConfig", {}).get("caBundle", "")), ca):
                    return False
        return True

    def sync_ca_bundles(self, bundle: bytes) -> str | None:
        """Patch (self-signed) or check (external) every webhook's caBundle; the problem, if any."""
        encoded = base64.b64encode(bundle).decode()
        signer = split_bundle(bundle)[0]
        problems = []
        for plural, name in self.options.configurations:
            try:
                config = self.client.get(self._configuration_path(plural, name))
            except ApiError as err:
                problems.append(f"{plural[:-1]} {name}: {'not found' if err.not_found else err}")
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
            data = self.sync_secret()
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
            self.problem = self.sync_ca_bundles(self.ca_bundle)
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
            self._informers.append(Informer(self.client, f"/apis/admissionregistration.k8s.io/v1/{plural}",
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

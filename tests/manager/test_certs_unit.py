"""The certificate decision as a pure function of (Secret data, now, names, options, what the
caBundles trust): every state of issuance, renewal and the two-step CA rotation, with real
certificates and ``now`` moved instead of waiting. The rotation under a stream of admissions
through the real apiserver is in test_cert_rotation.py."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from manager.certs import (ADD_SIGNER, KEEP, NEW_CREDENTIAL, REISSUE, WAIT_FOR_BUNDLES, CertOptions, carry_out,
                           decide, issue_serving, issued_by, new_ca, secret_data, service_dns_names, split_bundle)

DAY = 86400.0
NAMES = service_dns_names("kruise-webhook-service", "kruise-system")
OPTIONS = CertOptions(namespace="kruise-system", secret="kruise-webhook-certs", service="kruise-webhook-service",
                      cert_dir="/unused", configurations=(), mode="self-signed", ca_validity_s=365 * DAY, cert_validity_s=90 * DAY,
                      renew_before_s=30 * DAY)
NOW = dt.datetime.now(dt.timezone.utc)


def credential(ca_days: float = 365, cert_days: float = 90, names=NAMES) -> dict[str, bytes]:
    ca, ca_key = new_ca(ca_days * DAY)
    return secret_data(ca, ca_key, *issue_serving(ca, ca_key, names, cert_days * DAY))


def signer(data) -> x509.Certificate:
    return split_bundle(data["ca-cert.pem"])[0]


def at(days: float) -> dt.datetime:
    return NOW + dt.timedelta(days=days)


def rotated_step1(data, now) -> dict[str, bytes]:
    return carry_out(decide(data, now=now, dns_names=NAMES, options=OPTIONS, trusted=[]), data,
                     now=now, dns_names=NAMES, options=OPTIONS)


FRESH = credential()


@pytest.mark.parametrize("case, data, now, trusted, action", [
    ("empty secret", {}, NOW, [], NEW_CREDENTIAL),
    ("no CA key", {**FRESH, "ca-key.pem": b""}, NOW, [], NEW_CREDENTIAL),
    ("no serving key", {k: v for k, v in FRESH.items() if k != "key.pem"}, NOW, [], NEW_CREDENTIAL),
    ("garbage CA", {**FRESH, "ca-cert.pem": b"not a pem"}, NOW, [], NEW_CREDENTIAL),
    ("fresh", FRESH, NOW, [], KEEP),
    ("serving cert just outside its renew window", FRESH, at(59), [], KEEP),
    ("serving cert inside its renew window", FRESH, at(61), [], REISSUE),
    ("serving cert expired", FRESH, at(95), [], REISSUE),
    ("serving cert for another service", credential(names=service_dns_names("old", "kruise-system")), NOW, [], REISSUE),
    ("CA inside its renew window", FRESH, at(336), [], ADD_SIGNER),
])
def test_decision_table(case, data, now, trusted, action):
    assert decide(data, now=now, dns_names=NAMES, options=OPTIONS, trusted=trusted).action == action, case


def test_ca_rotation_adds_the_signer_then_waits_for_the_bundles_then_reissues():
    now = at(336)
    step1 = rotated_step1(FRESH, now)
    old_ca, new_signer = signer(FRESH), signer(step1)
    assert split_bundle(step1["ca-cert.pem"]) == [new_signer, old_ca]  # the old CA stays trusted
    assert step1["cert.pem"] == FRESH["cert.pem"]  # serving unchanged in step 1

    # Step 2 waits while any caBundle lacks the new signer (only the old one is trusted).
    decision = decide(step1, now=now, dns_names=NAMES, options=OPTIONS, trusted=[old_ca])
    assert decision.action == WAIT_FOR_BUNDLES
    assert carry_out(decision, step1, now=now, dns_names=NAMES, options=OPTIONS) is None

    decision = decide(step1, now=now, dns_names=NAMES, options=OPTIONS, trusted=[new_signer, old_ca])
    assert decision.action == REISSUE
    step2 = carry_out(decision, step1, now=now, dns_names=NAMES, options=OPTIONS)
    serving = split_bundle(step2["cert.pem"])[0]
    assert issued_by(serving, new_signer) and step2["tls.crt"] == step2["cert.pem"]
    assert decide(step2, now=now, dns_names=NAMES, options=OPTIONS, trusted=[new_signer]).action == KEEP


def test_reissue_drops_expired_cas_from_the_bundle_and_never_outlives_the_signer():
    # A bundle holding a new signer and a long-expired old CA: the reissue keeps only live CAs.
    now = at(400)
    expired_ca, _ = new_ca(30 * DAY)
    fresh_ca, fresh_key = new_ca(500 * DAY)
    old_cert, old_key = issue_serving(FRESH["ca-cert.pem"], FRESH["ca-key.pem"], NAMES, 90 * DAY)
    data = secret_data(fresh_ca + expired_ca, fresh_key, old_cert, old_key)
    decision = decide(data, now=now, dns_names=NAMES, options=OPTIONS, trusted=split_bundle(fresh_ca))
    assert decision.action == REISSUE
    result = carry_out(decision, data, now=now, dns_names=NAMES, options=OPTIONS)
    assert split_bundle(result["ca-cert.pem"]) == split_bundle(fresh_ca)
    short_ca, short_key = new_ca(10 * DAY)
    cert, _ = issue_serving(short_ca, short_key, NAMES, 90 * DAY)
    assert split_bundle(cert)[0].not_valid_after_utc <= split_bundle(short_ca)[0].not_valid_after_utc


def test_a_new_credential_names_the_service_and_keeps_upstreams_keys():
    result = carry_out(decide({}, now=NOW, dns_names=NAMES, options=OPTIONS, trusted=[]), {},
                       now=NOW, dns_names=NAMES, options=OPTIONS)
    assert set(result) == {"ca-cert.pem", "ca-key.pem", "cert.pem", "key.pem", "tls.crt", "tls.key"}
    assert decide(result, now=NOW, dns_names=NAMES, options=OPTIONS, trusted=[]).action == KEEP
    assert issued_by(split_bundle(result["cert.pem"])[0], signer(result))

"""The manager's options: declared once, every flag documented with its default, upstream's
names and defaults, Go's boolean and duration syntax, environment defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from manager.certs import CertOptions
from manager.lease import ElectionConfig
from manager.options import Options, format_duration, parse, parser
from manager.webhook import WebhookServer


def test_every_option_is_a_documented_flag_with_its_default_in_help():
    text = parser({}).format_help()
    for f in dataclasses.fields(Options):
        assert f.metadata["help"], f.name
        assert "--" + f.name.replace("_", "-") in text, f.name
    for shown in ("(default 15s)", "(default 10s)", "(default 2s)", "(default :8080)", "(default :8000)",
                  "(default 9876)", "(default 87600h)", "(default 720h)", "(default true)", "[$WEBHOOK_CERT_DIR]"):
        assert shown in " ".join(text.split()), shown


def test_defaults_are_upstreams():
    o = parse([], environ={})
    assert (o.leader_election_lease_duration, o.leader_election_renew_deadline, o.leader_election_retry_period) \
        == (15.0, 10.0, 2.0)
    assert (o.metrics_addr, o.health_probe_addr, o.webhook_port) == (":8080", ":8000", 9876)
    assert (o.leader_election_namespace, o.leader_election_id) == ("kruise-system", "kruise-manager")
    assert (o.secret_name, o.service_name) == ("kruise-webhook-certs", "kruise-webhook-service")
    assert o.enable_leader_election is True and o.verbose is False and o.role == "all"
    assert (o.webhook_max_requests_per_connection, o.webhook_max_connection_age, o.webhook_drain_delay,
            o.webhook_idle_timeout, o.webhook_io_timeout) == (1000, 0.5, 5.0, 120.0, 10.0)
    assert o == Options()  # the command line adds no default of its own


@pytest.mark.parametrize("component", [WebhookServer, CertOptions, ElectionConfig])
def test_the_managers_parts_have_no_defaults_of_their_own(component):
    """They take the options: a part built in a test is the part kruise-manager runs."""
    defaulted = [p.name for p in inspect.signature(component).parameters.values()
                 if p.default is not inspect.Parameter.empty]
    assert defaulted == []


def test_the_parts_settings_come_from_the_flags():
    o = parse(["--leader-election-namespace=ops", "--leader-election-id=lock", "--leader-election-lease-duration=20s",
               "--leader-election-renew-deadline=12s", "--leader-election-retry-period=3s", "--secret-name=s",
               "--service-name=svc", "--webhook-cert-dir=/certs", "--webhook-cert-mode=external",
               "--webhook-ca-validity=100h", "--webhook-cert-validity=50h", "--webhook-cert-renew-before=5h",
               "--mutating-webhook-configuration=m", "--validating-webhook-configuration=v"], environ={})
    assert ElectionConfig.from_options(o, "me", "uid-1") == ElectionConfig("ops", "lock", "me", 20.0, 12.0, 3.0, "uid-1")
    assert CertOptions.from_options(o) == CertOptions(
        namespace="ops", secret="s", service="svc", cert_dir="/certs",
        configurations=(("mutatingwebhookconfigurations", "m"), ("validatingwebhookconfigurations", "v")),
        mode="external", ca_validity_s=100 * 3600.0, cert_validity_s=50 * 3600.0, renew_before_s=5 * 3600.0)


@pytest.mark.parametrize("argv, field, value", [
    (["--enable-leader-election"], "enable_leader_election", True),
    (["--enable-leader-election=false"], "enable_leader_election", False),
    (["--enable-leader-election=true"], "enable_leader_election", True),
    (["--leader-election-lease-duration=1h30m"], "leader_election_lease_duration", 5400.0),
    (["--webhook-io-timeout", "500ms"], "webhook_io_timeout", 0.5),
    (["--webhook-io-timeout", "7"], "webhook_io_timeout", 7.0),
    (["-v"], "verbose", True),
    (["--metrics-addr=0"], "metrics_addr", "0"),
    (["--role=webhook"], "role", "webhook"),
    (["--feature-gates=AllAlpha=true,AllBeta=true"], "feature_gates", "AllAlpha=true,AllBeta=true"),
])
def test_flags_parse_as_go_flags_do(argv, field, value):
    assert getattr(parse(argv, environ={}), field) == value


@pytest.mark.parametrize("argv", [["--webhook-io-timeout=soon"], ["--webhook-io-timeout=-1"],
                                  ["--webhook-io-timeout=nan"], ["--enable-leader-election=maybe"],
                                  ["--metrics-addr=8080"], ["--role=both"], ["--webhook-port=x"],
                                  ["--feature-gates=AllAlpha"], ["--feature-gates=AllAlpha=maybe"]])
def test_bad_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(argv, environ={})
    assert exit_.value.code == 2
    assert "kruise-manager: error:" in capsys.readouterr().err


def test_environment_sets_defaults_and_flags_win():
    env = {"POD_NAMESPACE": "ops", "WEBHOOK_PORT": "10250", "WEBHOOK_CERT_MODE": "external", "LOG_FORMAT": "text"}
    o = parse([], environ=env)
    assert (o.leader_election_namespace, o.webhook_port, o.webhook_cert_mode, o.log_format) == \
        ("ops", 10250, "external", "text")
    assert parse(["--webhook-port=9443"], environ=env).webhook_port == 9443


@pytest.mark.parametrize("seconds, text", [(15.0, "15s"), (0.5, "0.5s"), (90.0, "1m30s"), (120.0, "2m"),
                                           (5400.0, "1h30m"), (87600 * 3600.0, "87600h"), (0.0, "0s")])
def test_durations_are_shown_in_the_syntax_the_flags_take(seconds, text):
    assert format_duration(seconds) == text
    assert parse([f"--webhook-io-timeout={text}"], environ={}).webhook_io_timeout == seconds

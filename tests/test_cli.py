"""The command line's shared behaviour: help, version, module entry point, connection flags."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from kruisectl import __version__
from kruisectl.cli import cli
from kruisectl.errors import KruisectlError
from kruisectl.kube import KubeTarget, default_namespace

import pytest
from kubekit import kruise


def test_help_lists_examples_and_completion():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "_KRUISECTL_COMPLETE" in result.output


def test_version_text_and_json():
    runner = CliRunner()
    assert __version__ in runner.invoke(cli, ["version"]).output
    info = json.loads(runner.invoke(cli, ["version", "-o", "json"]).output)
    assert info["kruisectl"] == __version__


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "kruisectl", "version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_unknown_command_is_a_usage_error_without_traceback():
    result = subprocess.run([sys.executable, "-m", "kruisectl", "no-such-command"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No such command" in result.stderr


def test_helm_namespace_is_the_default_only_when_helm_was_given_one(monkeypatch):
    monkeypatch.delenv("HELM_NAMESPACE", raising=False)
    monkeypatch.delenv("HELM_PLUGIN_NAME", raising=False)
    assert default_namespace() == kruise.NAMESPACE
    monkeypatch.setenv("HELM_NAMESPACE", "ops")
    assert default_namespace() == "ops"
    # helm sets "default" when -n was not given; as a plugin that means "not chosen".
    monkeypatch.setenv("HELM_NAMESPACE", "default")
    monkeypatch.setenv("HELM_PLUGIN_NAME", "kruise")
    assert default_namespace() == kruise.NAMESPACE


def test_missing_and_malformed_kubeconfig_are_one_line_errors(tmp_path):
    with pytest.raises(KruisectlError, match="does not exist"):
        KubeTarget(kubeconfig=str(tmp_path / "absent")).client()
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    with pytest.raises(KruisectlError, match="bad kubeconfig") as raised:
        KubeTarget(kubeconfig=str(broken)).client()
    assert "\n" not in raised.value.message
    no_context = tmp_path / "nocontext"
    no_context.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(KruisectlError, match="bad kubeconfig"):
        KubeTarget(kubeconfig=str(no_context), context="missing").client()


@pytest.mark.cluster
def test_kubeconfig_and_context_reach_the_real_cluster(cluster):
    client = KubeTarget(kubeconfig=str(cluster.kubeconfig), context="local").client()
    assert client.get("/version")["gitVersion"] == "v1.36.3"


@pytest.mark.cluster
def test_several_kubeconfig_files_act_as_the_first_files_user(cluster, tmp_path):
    """KUBECONFIG=missing:real:decoy: the missing file is skipped and the real one's context and
    user are used (a decoy later in the list naming the same context points elsewhere)."""
    import os

    import yaml
    from click.testing import CliRunner

    from kruisectl.cli import cli

    decoy = tmp_path / "decoy"
    real = yaml.safe_load(cluster.kubeconfig.read_text())
    decoy.write_text(yaml.safe_dump({**real, "clusters": [{"name": c["name"], "cluster": {"server": "https://127.0.0.1:1"}}
                                                          for c in real["clusters"]]}))
    paths = os.pathsep.join([str(tmp_path / "missing"), str(cluster.kubeconfig), str(decoy)])
    result = CliRunner().invoke(cli, ["status", "-o", "wide", "-n", "kube-system"], env={"KUBECONFIG": paths})
    context, user = real["current-context"], next(c["context"]["user"] for c in real["contexts"]
                                                  if c["name"] == real["current-context"])
    assert f"kubeconfig context: {context}, user: {user}" in result.output, result.output
    assert "127.0.0.1:1" not in result.output


def test_request_timeout_bounds_every_call_even_to_a_server_that_never_answers(tmp_path):
    """A hung apiserver (loopback: accepts, never answers) is given up on after
    --request-timeout, listing nodes included, with one line and exit 2."""
    import socket
    import threading
    import time

    import yaml

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    kubeconfig = tmp_path / "hung"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hung",
        "clusters": [{"name": "hung", "cluster": {"server": f"https://127.0.0.1:{listener.getsockname()[1]}",
                                                   "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "hung", "context": {"cluster": "hung", "user": "u"}}]}))
    try:
        for command in (["label-zones", "--zone", "z", "n1"], ["status"]):
            started = time.monotonic()
            result = CliRunner().invoke(cli, [*command, "--kubeconfig", str(kubeconfig), "--request-timeout", "1s"])
            assert result.exit_code == 2, (command, result.output)
            assert time.monotonic() - started < 8, command
            assert "timed out" in result.output, result.output
    finally:
        stop.set()
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.cluster
def test_namespace_and_node_completion_come_from_the_cluster(cluster):
    import os

    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "_KRUISECTL_COMPLETE": "bash_complete"}
    namespaces = subprocess.run([sys.executable, "-m", "kruisectl"], capture_output=True, text=True, timeout=30,
                                env={**env, "COMP_WORDS": "kruisectl status -n kube-", "COMP_CWORD": "3"})
    assert "plain,kube-system" in namespaces.stdout.split(), namespaces
    nodes = subprocess.run([sys.executable, "-m", "kruisectl"], capture_output=True, text=True, timeout=30,
                           env={**env, "COMP_WORDS": "kruisectl label-zones --zone z node-", "COMP_CWORD": "4"})
    offered = [line.split(",", 1)[1] for line in nodes.stdout.split()]
    assert offered and all(n.startswith("node-") for n in offered), nodes


def _all_commands(group=cli, path=()):
    import click

    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", list(_all_commands()), ids=" ".join)
def test_exit_codes_are_one_block_in_help(path):
    """Every exit code a command's help lists stands in its one "Exit codes:" block."""
    import re

    text = CliRunner().invoke(cli, [*path, "--help"]).output
    lines = text.splitlines()
    code_line = re.compile(r"^\s+(\d{1,3})\s{2,}\S")
    if "Exit codes:" not in text:
        assert not [line for line in lines if code_line.match(line)], text
        return
    start = next(i for i, line in enumerate(lines) if line.strip() == "Exit codes:")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    outside = [line for i, line in enumerate(lines) if code_line.match(line) and not start < i < end]
    assert outside == [], text
    assert text.count("Exit codes:") == 1

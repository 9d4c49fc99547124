"""One duration syntax for every --timeout, --wait, --interval and --request-timeout."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from kruisectl.cli import cli
from kruisectl.commands.options import Duration


@click.command()
@click.option("--wait", type=Duration(), default="0s")
@click.option("--interval", type=Duration(allow_zero=False), default="5s")
def probe(wait, interval):
    click.echo(f"{wait:g} {interval:g}")


@pytest.mark.parametrize("args, out", [
    ([], "0 5"),
    (["--wait", "30s"], "30 5"),
    (["--wait", "5m"], "300 5"),
    (["--wait", "1h2m"], "3720 5"),
    (["--wait", "90"], "90 5"),
    (["--wait", "1.5"], "1.5 5"),
    (["--interval", "500ms"], "0 0.5"),
])
def test_durations_as_kubectl_takes_them(args, out):
    result = CliRunner().invoke(probe, args)
    assert result.exit_code == 0 and result.output.strip() == out, result.output


@pytest.mark.parametrize("args, words", [
    (["--wait", "-5"], "'--wait'"),
    (["--wait", "nan"], "'--wait'"),
    (["--wait", "inf"], "'--wait'"),
    (["--wait", "5 minutes"], "invalid duration"),
    (["--interval", "0"], "must be more than 0"),
    (["--interval", "0s"], "'--interval'"),
])
def test_bad_durations_are_usage_errors_naming_the_option(args, words):
    result = CliRunner().invoke(probe, args)
    assert result.exit_code == 2 and words in result.output, result.output


@pytest.mark.parametrize("command", [["rollout", "status"], ["install"], ["uninstall"], ["drill", "run"],
                                     ["webhook", "check"], ["status"]])
def test_every_command_takes_kubectl_durations(command):
    """The help's own examples (--timeout 5m) parse; a bad value is refused before any call."""
    option = "--request-timeout" if command in (["webhook", "check"], ["status"]) else "--timeout"
    bad = CliRunner().invoke(cli, [*command, option, "-1s", "--kubeconfig", "/nonexistent"])
    assert bad.exit_code == 2 and option in bad.output, bad.output
    good = CliRunner().invoke(cli, [*command, option, "5m", "--kubeconfig", "/nonexistent"])
    assert "Invalid value" not in good.output, good.output

"""The ``kruisectl`` command line: a thin click layer over the importable library."""

from __future__ import annotations

import os
import sys

import click

from . import __version__
from .commands import doctor, drill, install, label_zones, rollout, status, webhook
from .errors import EXIT_CANNOT_CHECK, KruisectlError, describe_api_error

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failed(click.ClickException):
    """A :class:`KruisectlError` on its way out: ``error: <one line>`` and its exit code."""

    def __init__(self, err: KruisectlError):
        super().__init__(err.message)
        self.exit_code = err.exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class Commands(click.Group):
    """The command tree: what the library raises ends as one line and its exit code, wherever
    the command runs (the console script, ``helm kruise``, click's test runner)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KruisectlError as err:
            raise Failed(err) from None


@click.group(cls=Commands, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="kruisectl")
def cli() -> None:
    """Operate OpenKruise's control plane (kruise-manager): leader, webhook, zones, rollouts.

    \b
    Examples:
      kruisectl status                      # leader, replicas, zone spread, webhook
      kruisectl doctor                      # every HA failure mode, with fixes
      kruisectl label-zones --from-label rack   # plan zone labels for bare-metal nodes
      helm kruise status -n kruise-system   # the same, as a helm plugin

    Shell completion: eval "$(_KRUISECTL_COMPLETE=bash_source kruisectl)"  (or zsh_source, fish_source).
    """


@cli.command()
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)
def version(output: str) -> None:
    """Print kruisectl's version, what it installs by default (the bundled chart and the image
    it names) and the Python and client library versions."""
    import kubernetes

    from .bundle import defaults
    from .output import dump

    info = {**defaults(), "python": sys.version.split()[0], "kubernetesClient": kubernetes.__version__}
    if output != "text":
        click.echo(dump(info, output))
        return
    chart = info["chart"]
    click.echo(f"kruisectl {info['kruisectl']} (python {info['python']}, kubernetes client {info['kubernetesClient']})")
    click.echo(f"chart:  {chart['name']} {chart['version']} (appVersion {chart['appVersion']}, {chart['path']})"
               if chart else "chart:  none bundled (install and upgrade need --chart)")
    click.echo(f"image:  {info['image'] or 'none (no bundled chart)'}")


# Commands live one per module; each module exposes ``COMMANDS``.
for _module in (status, doctor, webhook, label_zones, rollout, install, drill):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Entry point: click's own errors keep their exit codes; Ctrl-C is exit 130 everywhere;
    anything unexpected becomes one line and exit 2 (KRUISECTL_DEBUG=1 shows the traceback)."""
    try:
        code = cli.main(prog_name="kruisectl", standalone_mode=False)
    except SystemExit:
        raise
    except click.exceptions.Abort as err:
        if isinstance(err.__cause__ or err.__context__, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(130)
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence against tracebacks
        if os.environ.get("KRUISECTL_DEBUG"):
            raise
        click.echo(f"error: {describe_api_error(exc)}", err=True)
        sys.exit(EXIT_CANNOT_CHECK)
    sys.exit(code if isinstance(code, int) else 0)

"""The harness's command lines (``python -m localcluster``, ``python -m localcluster.demo``) parse
what the Makefile, the docs and ``up`` (which starts ``serve``) pass them, and turn bad input
into one line and a non-zero exit. No cluster: parsing only, and ``down`` with nothing running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import __main__ as lc
from localcluster import demo

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module,argv,function,expected", [
    (lc, ["build"], "build_command", {"upstream": False}),
    (lc, ["build", "--upstream"], "build_command", {"upstream": True}),
    (lc, ["up"], "up", {"workdir": lc.DEFAULT_DIR, "nodes": 6, "bare_metal": 2, "zones": "zone-a,zone-b,zone-c",
                        "timeout": 1800}),
    (lc, ["up", "--dir", "/tmp/c", "--nodes", "3", "--bare-metal", "1", "--zones", "z1,z2", "--timeout", "12.5"], "up",
     {"workdir": Path("/tmp/c"), "nodes": 3, "bare_metal": 1, "zones": "z1,z2", "timeout": 12.5}),
    (lc, ["up", "--nodes", "0", "--bare-metal", "1000"], "up",
     {"workdir": lc.DEFAULT_DIR, "nodes": 0, "bare_metal": 1000, "zones": "zone-a,zone-b,zone-c", "timeout": 1800}),
    (lc, ["serve", "--dir", "/tmp/c", "--nodes", "3", "--bare-metal", "1", "--zones", "zone-a"], "serve",
     {"workdir": Path("/tmp/c"), "nodes": 3, "bare_metal": 1, "zones": "zone-a"}),
    (lc, ["serve", "--dir", "/tmp/c"], "serve", {"workdir": Path("/tmp/c"), "nodes": 6, "bare_metal": 2,
                                                 "zones": "zone-a,zone-b,zone-c"}),
    (lc, ["down"], "down", {"workdir": lc.DEFAULT_DIR}),
    (lc, ["down", "--dir", "/tmp/c"], "down", {"workdir": Path("/tmp/c")}),
    (demo, ["up"], "up", {"nodes": 6, "bare_metal": 2, "timeout": 1800}),
    (demo, ["up", "--nodes", "1", "--bare-metal", "100", "--timeout", "60"], "up",
     {"nodes": 1, "bare_metal": 100, "timeout": 60.0}),
    (demo, ["serve", "--nodes", "6", "--bare-metal", "2"], "serve", {"nodes": 6, "bare_metal": 2, "images": []}),
    (demo, ["serve", "--image", "/a.tar", "--image", "/b.tar"], "serve",
     {"nodes": 6, "bare_metal": 2, "images": [Path("/a.tar"), Path("/b.tar")]}),
    (demo, ["down"], "down", {}),
])
def test_each_command_line_parses(module, argv, function, expected):
    args = vars(module.parser().parse_args(argv))
    assert args.pop("function") is getattr(module, function)
    args.pop("command")
    assert args == expected


@pytest.mark.parametrize("module,argv,message", [
    (lc, ["up", "--nodes", "x"], "argument --nodes: 'x' is not a valid integer"),
    (lc, ["up", "--nodes", "10001"], "argument --nodes: 10001 is not in the range 0<=x<=10000"),
    (lc, ["up", "--bare-metal", "-1"], "argument --bare-metal: -1 is not in the range 0<=x<=1000"),
    (lc, ["up", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
    (lc, ["up", "--replicas", "3"], "unrecognized arguments: --replicas 3"),
    (lc, ["serve"], "the following arguments are required: --dir"),
    (lc, ["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    (demo, ["up", "--nodes", "0"], "argument --nodes: 0 is not in the range 1<=x<=1000"),
    (demo, ["up", "--bare-metal", "101"], "argument --bare-metal: 101 is not in the range 0<=x<=100"),
    (demo, ["down", "--dir", "/tmp"], "unrecognized arguments: --dir /tmp"),
])
def test_bad_input_is_one_line_and_exit_2(module, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"Error: {message}")
    assert err.rstrip().endswith("--help')")


@pytest.mark.parametrize("module,visible", [
    (lc, ["build", "up", "down"]),
    (demo, ["up", "down"]),
])
def test_help_lists_the_commands_but_not_serve(module, visible, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("commands:")[1].splitlines()[2:] if line.startswith("    ") and line[4] != " "]
    assert listed == visible


@pytest.mark.parametrize("module,command,help_text", [
    (lc, "build", "also the upstream kruise-manager (the tests run it)"),
    (lc, "up", "kwok nodes with a zone label [default: 6; 0<=x<=10000]"),
    (lc, "down", "Stop the cluster started by ``up``."),
    (lc, "serve", "Own the components until SIGTERM"),
    (demo, "up", "seconds to wait for the cluster, build included"),
    (demo, "serve", "OCI archives present locally"),
    (demo, "down", "Stop the demo: the manager processes, then the control plane."),
])
def test_each_command_has_help(module, command, help_text, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert help_text in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("module", [lc, demo])
def test_no_command_prints_the_help_and_exits_2(module, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.main([])
    assert exit_.value.code == 2
    assert "commands:" in capsys.readouterr().err


def test_down_with_nothing_running(tmp_path, capsys):
    lc.main(["down", "--dir", str(tmp_path)])
    assert capsys.readouterr().out == "no cluster is running\n"


def test_shell_bad_input_has_no_traceback():
    result = subprocess.run([sys.executable, "-m", "localcluster", "up", "--nodes", "many"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("Error: argument --nodes: 'many' is not a valid integer "
                             "(see 'python -m localcluster up --help')\n")


@pytest.mark.parametrize("tty,expected", [
    (False, "heading\n"),
    (True, "\033[1;33mheading\033[0m\n"),
])
def test_demo_colours_only_a_terminal(tty, expected, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    demo._say("heading", bold=True, fg="yellow")
    assert capsys.readouterr().out == expected

"""bench/repeat.py: the final JSON line of each run, and min / median / max of every number in
it over the runs. No cluster."""

from __future__ import annotations

import json

import pytest

from tests import bench_modules

repeat = bench_modules.load("repeat")


@pytest.mark.parametrize("text, expected", [
    ('progress\n{"a": 1}\n', {"a": 1}),
    ('{"row": 1}\n{"a": 2}\n\n', {"a": 2}),
])
def test_final_json_is_the_last_line(text, expected):
    assert repeat.final_json(text) == expected


@pytest.mark.parametrize("text", ["", "no figures\n", "[1]\n", "{broken\n",
                                  '{"row": 1}\nTraceback (most recent call last):\n  RuntimeError: x\n'])
def test_a_run_without_a_final_json_object_line_has_no_figures(text):
    with pytest.raises(ValueError):
        repeat.final_json(text)


@pytest.mark.parametrize("figures, expected", [
    ({"a": 1, "b": 2.5}, {"a": 1, "b": 2.5}),
    ({"a": {"b": {"c": 3}}, "d": None}, {"a.b.c": 3}),
    ({"ok": True, "n": 0, "list": [1, 2], "s": "x"}, {"n": 0}),
])
def test_numbers_flattens_nested_figures(figures, expected):
    assert repeat.numbers(figures) == expected


def test_spread_over_runs():
    runs = [{"gap": 1.0, "s": {"x": 3}}, {"gap": 3.0, "s": {"x": None}}, {"gap": 2.0, "s": {"x": 5}}]
    assert repeat.spread(runs) == {"gap": {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3},
                                   "s.x": {"min": 3, "median": 4.0, "max": 5, "n": 2}}


def test_main_reads_logs_and_counts_unreadable_ones(tmp_path, capsys):
    good = [tmp_path / f"run{i}.log" for i in range(3)]
    for i, path in enumerate(good):
        path.write_text(f"== scenario\n{json.dumps({'failed': i, 'share': 0.2 + i / 10})}\n")
    bad = tmp_path / "bad.log"
    bad.write_text("killed\n")
    rc = repeat.main(["--logs", *map(str, good), str(bad)])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1
    assert out["runs"] == 3 and out["failed_runs"] == 1
    assert out["figures"]["failed"] == {"min": 0, "median": 1, "max": 2, "n": 3}
    assert out["figures"]["share"]["median"] == 0.3


def test_main_needs_runs_or_logs():
    with pytest.raises(SystemExit):
        repeat.main([])


def test_main_runs_a_benchmark_several_times(tmp_path, capsys):
    counter = tmp_path / "count"
    script = tmp_path / "bench.py"
    script.write_text("import json, pathlib, sys\n"
                      f"p = pathlib.Path({str(counter)!r})\n"
                      "n = int(p.read_text()) + 1 if p.exists() else 1\n"
                      "p.write_text(str(n))\n"
                      "print('progress')\n"
                      "print(json.dumps({'n': n, 'arg': float(sys.argv[1])}))\n")
    rc = repeat.main(["--times", "3", "--", str(script), "7"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["runs"] == 3 and out["failed_runs"] == 0
    assert out["figures"]["n"] == {"min": 1, "median": 2, "max": 3, "n": 3}
    assert out["figures"]["arg"]["max"] == 7.0

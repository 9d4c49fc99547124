"""Pure planning of zone labels: sources, map files, and what the plan does to each node."""

from __future__ import annotations

import pytest

from kruisectl import zones
from kubekit import kruise


def node(name, **labels):
    return {"metadata": {"name": name, "labels": {k.replace("__", "/"): v for k, v in labels.items()}, "resourceVersion": "7"}}


def test_from_label_copies_zone_and_optionally_region():
    source = zones.FromLabel("rack", "dc")
    assert source.place(node("a", rack="r1", dc="dc1")) == ("r1", "dc1")
    assert source.place(node("b")) == (None, None)


def test_hostname_pattern_needs_a_zone_group_and_a_valid_regex():
    with pytest.raises(zones.SourceError, match="named group"):
        zones.HostnamePattern(r"^(\w+)-")
    with pytest.raises(zones.SourceError, match="not a valid regular expression"):
        zones.HostnamePattern(r"(?P<zone>")
    source = zones.HostnamePattern(r"^(?P<region>[a-z]+)-(?P<zone>z\d)-")
    assert source.place(node("eu-z2-host7")) == ("z2", "eu")
    assert source.place(node("no-match")) == (None, None)


def test_yaml_map_exact_names_win_over_regexes(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("bm-01: {zone: z9, region: r9}\n/bm-.*/: z1\nrack3-.*: {zone: z3}\n")
    source = zones.NodeMap.load(str(path))
    assert source.place(node("bm-01")) == ("z9", "r9")
    assert source.place(node("bm-02")) == ("z1", None)
    assert source.place(node("rack3-host")) == ("z3", None)
    assert source.place(node("other")) == (None, None)


def test_csv_map_with_header_and_region(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("node,zone,region\nbm-01,z1,r1\n# comment\nbm-02,z2\n")
    source = zones.NodeMap.load(str(path))
    assert source.place(node("bm-01")) == ("z1", "r1")
    assert source.place(node("bm-02")) == ("z2", None)


@pytest.mark.parametrize("text,message", [
    ("[1, 2]", "mappings"),
    ("bm-01: {region: r}", "needs a node"),
    ("'(bad': z", "not a valid regular expression"),
    ("a: [", "not valid YAML"),
])
def test_bad_maps_are_rejected_with_a_reason(tmp_path, text, message):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(zones.SourceError, match=message):
        zones.NodeMap.load(str(path))


def test_plan_actions():
    source = zones.FromLabel("rack")
    nodes = [
        node("missing", rack="r1"),
        node("same", rack="r1", **{"topology.kubernetes.io__zone": "r1"}),
        node("different", rack="r2", **{"topology.kubernetes.io__zone": "old"}),
        node("unplaceable"),
    ]
    rows = {r.node: r for r in zones.plan(nodes, source)}
    assert rows["missing"].action == zones.LABEL and rows["missing"].labels_to_set() == {kruise.ZONE_LABEL: "r1"}
    assert "same" not in rows, "already as the source says: nothing to plan"
    assert rows["different"].action == zones.CONFLICT
    assert rows["different"].note == "has zone old: --overwrite to replace"
    assert zones.why_not(rows["different"]) == rows["different"].note  # no "changed meanwhile" for a planned conflict
    assert rows["unplaceable"].action == zones.UNPLACED

    rows = {r.node: r for r in zones.plan(nodes, source, overwrite=True)}
    assert rows["different"].action == zones.OVERWRITE
    assert rows["different"].replaced == {kruise.ZONE_LABEL: "old"}


def test_region_only_when_asked():
    source = zones.FromLabel("rack", "dc")
    labelled_zone = node("n", rack="r1", dc="dc1", **{"topology.kubernetes.io__zone": "r1"})
    assert zones.plan([labelled_zone], source) == []
    rows = zones.plan([labelled_zone], source, include_region=True)
    assert rows[0].action == zones.LABEL and rows[0].labels_to_set() == {kruise.REGION_LABEL: "dc1"}


@pytest.mark.parametrize("zone, valid", [
    ("zone-a", True), ("eu-west-1a", True), ("Zone_1.b", True), ("a", True), ("x" * 63, True),
    ("bad zone!", False), ("-lead", False), ("trail-", False), ("['a', 'b']", False), ("x" * 64, False),
])
def test_proposed_values_are_checked_as_label_values(zone, valid):
    (row,) = zones.plan([node("n1")], zones.ExplicitZone(zone, ("n1",)))
    assert (row.action == zones.LABEL) is valid
    if not valid:
        assert row.action == zones.INVALID and row.note.startswith("zone ")
        assert row.action not in zones.CHANGING_ACTIONS  # listed, never written
        assert zones.summary([row])[zones.INVALID] == 1


def test_a_map_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "zones.yaml"
    path.write_bytes("n1: zöne\n".encode("latin-1"))
    with pytest.raises(zones.SourceError, match=f"map {path} is not UTF-8"):
        zones.NodeMap.load(str(path))

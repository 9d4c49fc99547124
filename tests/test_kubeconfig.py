"""KUBECONFIG=a:b:c merged as kubectl merges it: the first file wins for current-context and
for each named entry, missing files are skipped, relative paths stay relative to their file."""

from __future__ import annotations

import os

import pytest
import yaml

from kruisectl.kube import KubeTarget
from kubekit.kubeconfig import KubeconfigError, merge


def write(path, current, clusters=(), users=(), contexts=()):
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": s, **({"certificate-authority": ca} if ca else {})}}
                     for n, s, ca in clusters],
        "users": [{"name": n, "user": {"token": t}} for n, t in users],
        "contexts": [{"name": n, "context": {"cluster": c, "user": u}} for n, c, u in contexts]}))
    return str(path)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a" / "config", "ctx-a", clusters=[("shared", "https://a.example:6443", "ca.crt")],
              users=[("me", "token-a")], contexts=[("ctx-a", "shared", "me")])
    b = write(tmp_path / "b" / "config", "ctx-b", clusters=[("shared", "https://b.example:6443", None),
                                                             ("only-b", "https://ob.example:6443", str(tmp_path / "abs-ca.crt"))],
              users=[("me", "token-b"), ("other", "token-o")],
              contexts=[("ctx-b", "only-b", "other"), ("ctx-a", "only-b", "other")])
    return tmp_path, a, b


def test_the_first_file_wins_for_current_context_and_every_named_entry(files):
    tmp_path, a, b = files
    merged, used = merge([a, b])
    assert used == [a, b]
    assert merged["current-context"] == "ctx-a"
    clusters = {c["name"]: c["cluster"] for c in merged["clusters"]}
    assert clusters["shared"]["server"] == "https://a.example:6443"
    assert clusters["shared"]["certificate-authority"] == str(tmp_path / "a" / "ca.crt")  # relative to its file
    assert clusters["only-b"]["certificate-authority"] == str(tmp_path / "abs-ca.crt")  # absolute: kept
    assert {u["name"]: u["user"]["token"] for u in merged["users"]} == {"me": "token-a", "other": "token-o"}
    assert {c["name"]: c["context"]["cluster"] for c in merged["contexts"]} == {"ctx-a": "shared", "ctx-b": "only-b"}


def test_order_decides(files):
    _, a, b = files
    merged, _ = merge([b, a])
    assert merged["current-context"] == "ctx-b"
    assert {c["name"]: c["context"]["cluster"] for c in merged["contexts"]}["ctx-a"] == "only-b"


def test_missing_files_are_skipped_and_none_at_all_is_an_error(files):
    tmp_path, a, b = files
    merged, used = merge([str(tmp_path / "nope"), a, str(tmp_path / "gone"), b])
    assert used == [a, b] and merged["current-context"] == "ctx-a"
    with pytest.raises(KubeconfigError, match="none of the kubeconfig files exists"):
        merge([str(tmp_path / "nope"), str(tmp_path / "gone")])


def test_the_client_uses_the_first_files_context_and_says_which(files, monkeypatch):
    tmp_path, a, b = files
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), a, b]))
    for ca in (tmp_path / "a" / "ca.crt", tmp_path / "abs-ca.crt"):
        ca.write_text("")  # the files exist; their content is not read until a call
    target = KubeTarget()
    api = target.client()
    assert api.configuration.host == "https://a.example:6443"
    assert (target.context_used, target.user_used) == ("ctx-a", "me")
    assert api.configuration.api_key.get("BearerToken", "").endswith("token-a")
    other = KubeTarget(context="ctx-b")
    assert other.client().configuration.host == "https://ob.example:6443"
    assert (other.context_used, other.user_used) == ("ctx-b", "other")


def test_context_completion_offers_the_merged_contexts(files):
    import subprocess
    import sys

    _, a, b = files
    env = {**os.environ, "KUBECONFIG": os.pathsep.join([a, b]), "_KRUISECTL_COMPLETE": "bash_complete",
           "COMP_WORDS": "kruisectl status --context ctx", "COMP_CWORD": "3"}
    out = subprocess.run([sys.executable, "-m", "kruisectl"], env=env, capture_output=True, text=True, timeout=30)
    assert sorted(line.split(",", 1)[1] for line in out.stdout.split()) == ["ctx-a", "ctx-b"], out

"""`python -m kitlib doctor --online` against loopback: redirect chains followed, 404 / 403 / wrong size reported."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from kitlib.data import manifest
from kitlib.models import hub
from kitlib.course import online
from kitlib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def served_registry(routed_http, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Registry, presets and manifest pointed at loopback: two good routes (one redirecting twice), three bad."""
    routes, base = routed_http
    # TF Hub handle -> 302 to the model page's host -> 302 to the storage holding the archive (the real chain).
    routes["/tfhub/encoder/2?tf-hub-format=compressed"] = (302, f"{base}/kaggle/encoder/2", b"")
    routes["/kaggle/encoder/2"] = (302, f"{base}/storage/encoder.tar.gz", b"")
    routes["/storage/encoder.tar.gz"] = (200, None, b"x" * 1234)
    routes["/kaggle-models/keras/bert/keras/bert_tiny_en_uncased/3"] = (200, None, b"<html>model page</html>")
    routes["/tfhub/forbidden/1?tf-hub-format=compressed"] = (403, None, b"forbidden")
    routes["/imdb.tar.gz"] = (200, None, b"y" * 99)
    # /gone.zip and the other presets are not in the table: 404
    good = hub.HubModel("good", "text", {"cpu": {"encoder": f"{base}/tfhub/encoder/2"}}, None)
    denied = hub.HubModel("denied", "image", {"cpu": {"feature_vector": f"{base}/tfhub/forbidden/1"}}, None)
    monkeypatch.setattr(hub, "MODELS", {"good": good, "denied": denied})
    monkeypatch.setattr(hub, "KERAS_HUB_PRESETS", ("bert_tiny_en_uncased",))
    monkeypatch.setattr(online, "KAGGLE_MODELS", f"{base}/kaggle-models/")
    monkeypatch.setattr(online, "publication_targets", lambda: [])  # tested on its own below
    imdb, cats = manifest.ARCHIVES["imdb"], manifest.ARCHIVES["cats_and_dogs"]
    monkeypatch.setattr(manifest, "ARCHIVES", {
        "imdb": dataclasses.replace(imdb, url=f"{base}/imdb.tar.gz", size=100),
        "cats_and_dogs": dataclasses.replace(cats, url=f"{base}/gone.zip"),
    })
    return {"base": base}


def test_each_handle_is_followed_to_its_host_and_failures_named(served_registry, kit_env, monkeypatch, capsys) -> None:
    base = served_registry["base"]
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    assert main(["doctor", "--online"]) == 1
    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["ok   TF Hub good encoder (cpu)"].endswith(
        f"-> {base}/storage/encoder.tar.gz after 2 redirects (1,234 bytes)"), lines
    assert "FAIL TF Hub denied feature_vector (cpu)" in lines
    assert "HTTP 403" in lines["FAIL TF Hub denied feature_vector (cpu)"]
    assert lines["ok   keras-hub preset bert_tiny_en_uncased"].endswith(
        f"{base}/kaggle-models/keras/bert/keras/bert_tiny_en_uncased/3 (23 bytes)")
    assert "99 bytes where the manifest pins 100" in lines["FAIL dataset imdb"]
    assert "HTTP 404" in lines["FAIL dataset cats_and_dogs"]
    assert "online: 2 of 5 reachable; failed: TF Hub denied" in "\n".join(lines.values())


def test_all_reachable_exits_zero(served_registry, kit_env, monkeypatch, capsys) -> None:
    monkeypatch.setattr(hub, "MODELS", {"good": hub.MODELS["good"]})
    monkeypatch.setattr(manifest, "ARCHIVES", {})
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    assert main(["doctor", "--online"]) == 0
    assert "online: 2 of 2 reachable" in capsys.readouterr().out


def test_online_refuses_when_the_network_is_switched_off(kit_env) -> None:
    with pytest.raises(SystemExit, match="KITLIB_OFFLINE=1 turns the network off"):
        main(["doctor", "--online"])


def test_targets_cover_the_registry_the_presets_and_the_manifest() -> None:
    urls = [t.url for t in online.targets()]
    handles = {url for m in hub.MODELS.values() for h in m.handles.values() for url in h.values()}
    assert {u.removesuffix(online.TFHUB_FORMAT) for u in urls if u.endswith(online.TFHUB_FORMAT)} == handles
    assert f"{online.KAGGLE_MODELS}keras/bert/keras/bert_small_en_uncased/3" in urls
    entries = json.loads((ROOT / "data" / "datasets.json").read_text())
    assert {e["url"] for k, e in entries.items() if not k.startswith("_")} <= set(urls)


def test_lesson_04_presets_are_the_registered_ones() -> None:
    nb = json.loads((ROOT / "notebooks" / "04_finetune_bert.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    knob = re.search(r"KERAS_HUB_PRESET = cfg\.pick\(([^)]*)\)", code).group(1)
    assert tuple(re.findall(r'"(\w+)"', knob)) == hub.KERAS_HUB_PRESETS


def test_the_repository_site_and_each_badge_are_probed_where_a_lesson_opens(routed_http, tmp_path, monkeypatch) -> None:
    routes, base = routed_http
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    (clone / "README.md").write_text("# kit\n")
    (clone / "pyproject.toml").write_text('[project]\nname = "kitlib"\n[project.urls]\n'
                                          'Repository = "https://github.com/someone/kit"\n')
    badge = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research." \
            "google.com/github/someone/kit/blob/exercises/notebooks/{name})"
    for name in ("00_start_here.ipynb", "01_words.ipynb"):
        cell = {"cell_type": "markdown", "id": "badge", "metadata": {}, "source": badge.format(name=name) + "\n\nText."}
        (clone / "notebooks" / name).write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                              "nbformat_minor": 5}))
    (clone / "notebooks" / "02_no_badge.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# no badge"}], "metadata": {},
         "nbformat": 4, "nbformat_minor": 5}))
    listed = online.publication_targets(clone)
    assert [(t.label, t.url) for t in listed[:4]] == [
        ("repository", "https://github.com/someone/kit"), ("course site", "https://someone.github.io/kit/"),
        ("Colab badge of 00_start_here.ipynb", "https://github.com/someone/kit/blob/exercises/notebooks/00_start_here.ipynb"),
        ("Colab badge of 01_words.ipynb", "https://github.com/someone/kit/blob/exercises/notebooks/01_words.ipynb")]
    assert listed[4].error == "no Colab badge in its first cell"
    monkeypatch.setattr(online, "GITHUB", f"{base}/gh/")
    routes["/gh/someone/kit/blob/exercises/notebooks/00_start_here.ipynb"] = (200, None, b"{}")
    probes = [online.probe(t, timeout=5) for t in online.publication_targets(clone)[2:]]
    assert [p.ok for p in probes] == [True, False, False], "a badge whose file is not published fails"
    assert "HTTP 404" in probes[1].problem


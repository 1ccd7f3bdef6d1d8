"""Compat report: statuses, forgiving missing files, ranking of missing node types, CLI entry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import (
    DEFAULT_LINKS,
    default_graph_nodes,
    inp,
    node,
    nodes_by_id,
    small_registry,
    workflow,
)

from lego_backend import compat_report as cr

REG = small_registry()


def with_extra(*types: str) -> dict[str, Any]:
    return workflow(default_graph_nodes() + [node(100 + i, t, [], ["IMAGE"])
                                             for i, t in enumerate(types)], DEFAULT_LINKS)


def write_corpus(folder: Path) -> list[Path]:
    bad_sampler = default_graph_nodes()
    nodes_by_id(bad_sampler)[3]["widgets_values"] = [1, "fixed", 20, 8, "bogus", "normal", 1]
    load_image = workflow([node(1, "LoadImage", [], ["IMAGE", "MASK"], ["nowhere.png", "image"]),
                           node(2, "SaveImage", [inp("images", "IMAGE", 1)], [], ["x"])],
                          [[1, 1, 0, 2, 0, "IMAGE"]])
    files = {
        "full_default": workflow(default_graph_nodes(), DEFAULT_LINKS),
        "full_missing_image": load_image,  # input image absent on this machine: forgiven
        "partial_sampler": workflow(bad_sampler, DEFAULT_LINKS),
        "api_only_foo": with_extra("FooNode"),
        "only_foo": with_extra("FooNode"),
        "foo_and_bar": with_extra("FooNode", "BarNode"),
        "bar_baz": with_extra("BarNode", "BazNode"),
        "broken": {"nodes": [{"id": 1}], "links": []},
        "index": [{"templates": [{"name": "api_only_foo", "openSource": False}]}],
    }
    paths = []
    for name, data in files.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(data))
        paths.append(path)
    (folder / "not_json.json").write_text("{")
    return [*paths, folder / "not_json.json"]


def test_statuses_and_ranking(tmp_path: Path) -> None:
    report = cr.compat_report(write_corpus(tmp_path), REG)
    status = {r.name: r.status for r in report.results}
    assert status == {
        "full_default": "full", "full_missing_image": "full", "partial_sampler": "partial",
        "api_only_foo": "unsupported", "only_foo": "unsupported", "foo_and_bar": "unsupported",
        "bar_baz": "unsupported", "broken": "invalid", "not_json": "invalid"}
    assert report.skipped == ["index.json"]
    partial = next(r for r in report.results if r.name == "partial_sampler")
    assert any("sampler_name" in p for p in partial.problems)
    assert [r.name for r in report.results if r.cloud] == ["api_only_foo"]
    ranking = {m.class_type: (m.sole_blocker, m.appears_in) for m in report.missing_ranking()}
    assert ranking == {"FooNode": (2, 3), "BarNode": (0, 2), "BazNode": (0, 1)}
    assert [m.class_type for m in report.missing_ranking()] == ["FooNode", "BarNode", "BazNode"]
    local = {m.class_type: (m.sole_blocker, m.appears_in)
             for m in report.missing_ranking(local_only=True)}
    assert local["FooNode"] == (1, 2)
    # Greedy: Foo unlocks only_foo; then Bar unlocks foo_and_bar; then Baz unlocks bar_baz.
    assert report.unlock_path(5) == [("FooNode", 1), ("BarNode", 2), ("BazNode", 3)]


def test_format_report_headline(tmp_path: Path) -> None:
    text = cr.format_report(cr.compat_report(write_corpus(tmp_path), REG), top=2)
    assert "templates: 9" in text
    assert "fully supported" in text and "FooNode" in text
    assert "BazNode" not in text.split("greedy")[0]  # only the top 2 are ranked
    assert "full_default" in text and "partial_sampler" in text


def test_main_compat_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import node_library

    write_corpus(tmp_path)
    monkeypatch.setattr(node_library, "build_registry", small_registry)
    assert cr.main_compat_report(["--templates", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["missing"][0] == {"class_type": "FooNode", "appears_in": 3, "sole_blocker": 2}
    assert cr.main_compat_report(["--templates", str(tmp_path / "nope")]) == 2

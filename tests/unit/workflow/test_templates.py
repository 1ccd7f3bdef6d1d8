"""Real editor files: the vendored templates and (when installed) the whole template corpus of
comfyui-workflow-templates-json, converted and validated against the real node registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy_compat.workflow_format import workflow_to_prompt
from comfy_compat.workflow_resolve import VIRTUAL_TYPES
from lego_backend.compat_report import compat_report, default_template_dir
from lego_backend.errors import GraphValidationError
from lego_backend.graph.compiler import CompileOptions, compile_graph
from lego_backend.graph.graph import to_graph
from node_library.spec import NodeSpec

DATA = Path(__file__).resolve().parents[2] / "data" / "workflows"


@pytest.fixture(scope="module")
def registry() -> Any:
    from node_library import build_registry  # imports the torch-backed node modules

    return build_registry()


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def compile_any_models(prompt: dict[str, Any], registry: Any) -> Any:
    values = sorted({v for b in prompt.values() for v in b["inputs"].values()
                     if isinstance(v, str)})
    return compile_graph(to_graph(prompt), registry, CompileOptions(list_choices=lambda f: values))


def test_default_graph_compiles_with_the_real_registry(registry: Any) -> None:
    prompt = workflow_to_prompt(load("default_graph_v04.json"), registry)
    assert prompt == load("default_graph_v04.api.json")
    plan = compile_any_models(prompt, registry)
    assert plan.outputs == ["9"]


def test_sdxl_base_refiner_template_with_primitive_fan_out(registry: Any) -> None:
    data = load("template_sdxl_simple_example.json")
    steps = next(n for n in data["nodes"] if n["id"] == 45)  # PrimitiveNode "steps"
    steps["widgets_values"] = [31, "fixed"]
    prompt = workflow_to_prompt(data, registry)
    assert prompt["10"]["class_type"] == "KSamplerAdvanced"
    assert prompt["10"]["inputs"]["steps"] == prompt["11"]["inputs"]["steps"] == 31
    assert prompt["10"]["inputs"]["noise_seed"] == 721897303308196
    assert prompt["10"]["inputs"]["end_at_step"] == prompt["11"]["inputs"]["start_at_step"] == 20
    assert prompt["10"]["_meta"]["title"] == "KSampler (Advanced) - BASE"
    assert prompt["6"]["inputs"]["text"] == prompt["15"]["inputs"]["text"]
    assert not any(b["class_type"] in VIRTUAL_TYPES for b in prompt.values())
    compile_any_models(prompt, registry)


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("template_*.json")))
def test_vendored_templates_convert_or_name_exactly_their_missing_types(
        name: str, registry: Any) -> None:
    data = load(name)
    needed = {n["type"] for n in data["nodes"] if n.get("mode", 0) not in (2, 4)
              and n["type"] not in VIRTUAL_TYPES}
    missing = sorted(t for t in needed if t not in registry)
    if not missing:
        compile_any_models(workflow_to_prompt(data, registry), registry)
        return
    with pytest.raises(GraphValidationError) as info:
        workflow_to_prompt(data, registry)
    assert info.value.error.extra_info == {"missing_node_types": missing}


# --- the installed corpus ----------------------------------------------------------------------

def corpus() -> list[Path]:
    folder = default_template_dir()
    if folder is None:
        pytest.skip("comfyui-workflow-templates-json is not installed")
    return sorted(folder.glob("*.json"))


def test_whole_corpus_converts_and_validates_without_crashing(registry: Any) -> None:
    files = corpus()
    report = compat_report(files, registry)  # any non-GraphValidationError would propagate
    workflows = [p for p in files if isinstance(d := json.loads(p.read_text()), dict)
                 and isinstance(d.get("nodes"), list)]
    assert len(report.results) == len(workflows) > 100
    assert report.count("invalid") == 0, [r for r in report.results if r.status == "invalid"]
    assert report.count("full") >= 1


class EveryType:
    """A registry that knows every node type (with no widgets): exercises the structural part
    of conversion (reroutes, bypass, subgraphs) on every template, not only supported ones."""

    def get(self, class_type: str) -> NodeSpec:
        return NodeSpec(class_type, class_type, "any", (), (), lambda ctx, **kw: None)

    def __contains__(self, class_type: object) -> bool:
        return True


def test_whole_corpus_resolves_structurally() -> None:
    converted = 0
    for path in corpus():
        data = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and isinstance(data.get("nodes"), list)):
            continue
        prompt = workflow_to_prompt(data, EveryType())  # type: ignore[arg-type]
        converted += 1
        for body in prompt.values():
            assert body["class_type"] not in VIRTUAL_TYPES
            for value in body["inputs"].values():
                if isinstance(value, list):  # a link (list constants are wrapped)
                    assert value[0] in prompt
    assert converted > 100

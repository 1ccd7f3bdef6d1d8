"""Compiler: every ComfyUI validation error kind, collected at once, without models."""
from __future__ import annotations

import pytest

from lego_backend.errors import GraphValidationError
from lego_backend.graph.compiler import CompileOptions, compile_graph
from lego_backend.graph.graph import to_graph
from node_library.inputs import COMBO, FLOAT, INT, OUT, SOCKET, STRING
from node_library.registry import NodeRegistry
from node_library.spec import NodeOutput, NodeSpec


def _noop(ctx, **kw):
    return NodeOutput(())


REGISTRY = NodeRegistry([
    NodeSpec("Loader", "Loader", "t", (COMBO("name", choices_from="checkpoints"),),
             (OUT("MODEL"), OUT("CLIP")), _noop),
    NodeSpec("Encode", "Encode", "t", (STRING("text"), SOCKET("clip", "CLIP")),
             (OUT("CONDITIONING"),), _noop),
    NodeSpec("Sample", "Sample", "t",
             (SOCKET("model", "MODEL"), INT("steps", 20, 1, 100), FLOAT("cfg", 8.0, 0.0, 100.0),
              COMBO("sampler", ("euler", "heun")), SOCKET("positive", "CONDITIONING")),
             (OUT("LATENT"),), _noop),
    NodeSpec("Save", "Save", "t", (SOCKET("latent", "LATENT"), STRING("prefix", "x")), (), _noop,
             output_node=True),
])
OPTS = CompileOptions(list_choices=lambda folder: ["a.safetensors", "b.safetensors"])


def good_prompt() -> dict:
    return {
        "1": {"class_type": "Loader", "inputs": {"name": "a.safetensors"}},
        "2": {"class_type": "Encode", "inputs": {"text": "cat", "clip": ["1", 1]}},
        "3": {"class_type": "Sample", "inputs": {"model": ["1", 0], "steps": "12", "cfg": 7,
                                                 "sampler": "euler", "positive": ["2", 0]}},
        "4": {"class_type": "Save", "inputs": {"latent": ["3", 0], "prefix": "out"}},
    }


def compile_(prompt: dict, **kw):
    opts = CompileOptions(list_choices=OPTS.list_choices, **kw)
    return compile_graph(to_graph(prompt), REGISTRY, opts)


def errors_of(prompt: dict) -> GraphValidationError:
    with pytest.raises(GraphValidationError) as info:
        compile_(prompt)
    return info.value


def test_valid_graph_orders_steps_and_coerces_widgets():
    plan = compile_(good_prompt())
    order = list(plan.steps)
    assert order.index("1") < order.index("2") < order.index("3") < order.index("4")
    assert plan.steps["3"].constants["steps"] == 12  # "12" coerced to int
    assert plan.prompt["3"]["inputs"]["cfg"] == 7.0 and isinstance(plan.prompt["3"]["inputs"]["cfg"], float)
    assert plan.outputs == ["4"]


def test_unknown_class_and_missing_class_type():
    p = good_prompt()
    p["5"] = {"class_type": "Nope", "inputs": {}}
    err = errors_of(p)
    assert err.error.type == "invalid_prompt"
    assert err.error.message == "Cannot execute because node Nope does not exist."
    assert err.error.details == "Node ID '#5'"
    p = good_prompt()
    p["5"] = {"inputs": {}}
    assert errors_of(p).error.message == ("Cannot execute because a node is missing the "
                                          "class_type property.")


def test_no_outputs():
    p = good_prompt()
    del p["4"]
    err = errors_of(p)
    assert (err.error.type, err.error.message) == ("prompt_no_outputs", "Prompt has no outputs")


def test_all_errors_are_collected_at_once():
    p = good_prompt()
    del p["2"]["inputs"]["text"]                       # required_input_missing
    p["3"]["inputs"]["steps"] = 0                      # value_smaller_than_min
    p["3"]["inputs"]["cfg"] = "lots"                   # invalid_input_type
    p["3"]["inputs"]["sampler"] = "dpm_magic"          # value_not_in_list
    p["1"]["inputs"]["name"] = "missing.safetensors"   # value_not_in_list (model file)
    err = errors_of(p)
    assert err.error.type == "prompt_outputs_failed_validation"
    kinds = {nid: sorted(r.type for r in ne.errors) for nid, ne in err.node_errors.items()}
    assert kinds == {"1": ["value_not_in_list"], "2": ["required_input_missing"],
                     "3": ["invalid_input_type", "value_not_in_list", "value_smaller_than_min"]}
    assert all(ne.dependent_outputs == ["4"] for ne in err.node_errors.values())
    reason = next(r for r in err.node_errors["3"].errors if r.type == "value_not_in_list")
    assert reason.details == "sampler: 'dpm_magic' not in ['euler', 'heun']"
    assert err.node_errors["3"].class_type == "Sample"
    assert "Value 0 smaller than min of 1: steps" in err.error.details


def test_bad_link_shapes_and_type_mismatch():
    p = good_prompt()
    p["3"]["inputs"]["model"] = ["1"]          # malformed link
    p["3"]["inputs"]["positive"] = ["1", 0]    # MODEL into CONDITIONING
    err = errors_of(p)
    kinds = sorted(r.type for r in err.node_errors["3"].errors)
    assert kinds == ["bad_linked_input", "return_type_mismatch"]
    mismatch = next(r for r in err.node_errors["3"].errors if r.type == "return_type_mismatch")
    assert mismatch.details == "positive, received_type(MODEL) mismatch input_type(CONDITIONING)"


def test_link_to_missing_node_and_slot():
    p = good_prompt()
    p["3"]["inputs"]["model"] = ["99", 0]
    p["2"]["inputs"]["clip"] = ["1", 7]
    err = errors_of(p)
    assert {nid for nid in err.node_errors} == {"2", "3"}


def test_cycle_is_refused():
    reg = NodeRegistry([*(REGISTRY.get(n) for n in REGISTRY.names()),
                        NodeSpec("Loop", "Loop", "t", (SOCKET("x", "LATENT"),), (OUT("LATENT"),),
                                 _noop)])
    prompt = {"1": {"class_type": "Loop", "inputs": {"x": ["2", 0]}},
              "2": {"class_type": "Loop", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "Save", "inputs": {"latent": ["2", 0], "prefix": "p"}}}
    with pytest.raises(GraphValidationError) as info:
        compile_graph(to_graph(prompt), reg, OPTS)
    types = {r.type for ne in info.value.node_errors.values() for r in ne.errors}
    assert types == {"dependency_cycle"}


def test_partial_success_keeps_valid_outputs_and_reports_the_rest():
    p = good_prompt()
    p["5"] = {"class_type": "Save", "inputs": {"prefix": "y"}}  # missing latent
    plan = compile_(p)
    assert plan.outputs == ["4"]
    assert plan.node_errors["5"].errors[0].type == "required_input_missing"


def test_partial_execution_targets_restrict_outputs():
    p = good_prompt()
    p["5"] = {"class_type": "Save", "inputs": {"latent": ["3", 0], "prefix": "y"}}
    plan = compile_(p, partial_targets=["5"])
    assert plan.outputs == ["5"]
    with pytest.raises(GraphValidationError) as info:
        compile_(p, partial_targets=["42"])
    assert info.value.error.type == "prompt_no_outputs"


def test_unused_nodes_are_not_planned():
    p = good_prompt()
    p["6"] = {"class_type": "Encode", "inputs": {"text": "unused", "clip": ["1", 1]}}
    assert "6" not in compile_(p).steps


def test_too_many_nodes():
    p = {str(i): {"class_type": "Loader", "inputs": {"name": "a.safetensors"}} for i in range(30)}
    with pytest.raises(GraphValidationError) as info:
        compile_(p, max_nodes=10)
    assert info.value.error.type == "prompt_too_large"


def test_value_wrapped_in___value___is_unwrapped():
    p = good_prompt()
    p["2"]["inputs"]["text"] = {"__value__": "dog"}
    assert compile_(p).steps["2"].constants["text"] == "dog"

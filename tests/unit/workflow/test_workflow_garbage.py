"""Garbage in -> GraphValidationError out: never KeyError/TypeError/IndexError/RecursionError,
never a hang on cycles or self-containing subgraphs. Hand-picked cases plus a seeded mutation
fuzzer (hypothesis is not a dependency of this project)."""
from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from workflow_helpers import (
    DEFAULT_LINKS,
    S_ID,
    T_ID,
    default_graph_nodes,
    inp,
    node,
    small_registry,
    subgraph,
    subgraph_workflow,
    workflow,
)

from comfy_compat.workflow_format import workflow_to_prompt
from lego_backend.errors import GraphValidationError

REG = small_registry()


def rejects(data: Any) -> GraphValidationError:
    with pytest.raises(GraphValidationError) as info:
        workflow_to_prompt(data, REG)
    assert info.value.error.message
    return info.value


def good_node() -> dict[str, Any]:
    return node(1, "SaveImage", [inp("images", "IMAGE", None)], [], ["x"])


@pytest.mark.parametrize("data", [
    None, [], "nodes", 5, {}, {"links": []}, {"nodes": "x"}, {"nodes": None},
    {"nodes": [None]}, {"nodes": [5]}, {"nodes": [{"id": 1}]}, {"nodes": [{"type": "SaveImage"}]},
    {"nodes": [{"id": True, "type": "SaveImage"}]}, {"nodes": [{"id": [1], "type": "SaveImage"}]},
    {"nodes": [{"id": 1, "type": 7}]}, {"nodes": [{"id": 1, "type": ""}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "inputs": "x"}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [5]}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"type": "IMAGE"}]}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"name": "a", "link": 1.5}]}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "outputs": {"a": 1}}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "mode": "always"}]},
    {"nodes": [{"id": 1, "type": "SaveImage", "widgets_values": 3}]},
    {"nodes": [good_node(), good_node()]},  # duplicate id
    {"nodes": [good_node()], "links": "x"},
    {"nodes": [good_node()], "links": [[1, 2]]},
    {"nodes": [good_node()], "links": [[1, 2, "0", 3, 0, "X"]]},
    {"nodes": [good_node()], "links": [{"id": 1, "origin_id": 2}]},
    {"nodes": [good_node()], "links": ["1,2,0,3,0"]},
    {"nodes": [good_node()], "definitions": "x"},
    {"nodes": [good_node()], "definitions": {"subgraphs": {"a": 1}}},
    {"nodes": [good_node()], "definitions": {"subgraphs": [{"nodes": []}]}},
    {"nodes": [good_node()], "definitions": {"subgraphs": [{"id": S_ID}]}},
    {"nodes": [good_node()], "definitions": {"subgraphs": [
        {"id": S_ID, "nodes": [], "inputs": [{"name": "x", "linkIds": "1"}]}]}},
    {"1": {"class_type": "SaveImage", "inputs": {}}},  # API format, not UI
    {"nodes": [node(1, S_ID, [], [])]},  # instance of an undefined subgraph
])
def test_malformed_structures_are_rejected_clearly(data: Any) -> None:
    err = rejects(data)
    assert err.error.type == "invalid_workflow"
    assert err.error.details


def test_cyclic_reroutes_raise_instead_of_hanging() -> None:
    nodes = [node(1, "Reroute", [inp("", "*", 2)], ["*"]),
             node(2, "Reroute", [inp("", "*", 1)], ["*"]),
             node(3, "SaveImage", [inp("images", "IMAGE", 3)], [], ["x"])]
    links = [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 1, 0, 3, 0, "IMAGE"]]
    assert "cycle" in rejects(workflow(nodes, links)).error.details


def test_cyclic_bypassed_nodes_raise() -> None:
    nodes = [node(1, "VAEDecode", [inp("samples", "IMAGE", 2)], ["IMAGE"], mode=4),
             node(2, "VAEDecode", [inp("samples", "IMAGE", 1)], ["IMAGE"], mode=4),
             node(3, "SaveImage", [inp("images", "IMAGE", 3)], [], ["x"])]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 1, 0, "IMAGE"], [3, 1, 0, 3, 0, "IMAGE"]]
    assert "cycle" in rejects(workflow(nodes, links)).error.details


def test_a_long_reroute_chain_is_refused_not_a_recursion_error() -> None:
    count = 5000
    nodes = [node(i, "Reroute", [inp("", "*", i - 1 if i > 1 else None)], ["*"])
             for i in range(1, count + 1)]
    nodes.append(node(count + 1, "SaveImage", [inp("images", "IMAGE", count)], [], ["x"]))
    links = [[i, i, 0, i + 1, 0, "*"] for i in range(1, count + 1)]
    assert "too long" in rejects(workflow(nodes, links)).error.details


def test_self_containing_subgraphs_raise() -> None:
    selfish = subgraph(S_ID, [], [], [node(1, S_ID, [], [])], [])
    assert "contains itself" in rejects(
        workflow([node(5, S_ID, [], [])], [], [selfish])).error.details
    a = subgraph(S_ID, [], [], [node(1, T_ID, [], [])], [])
    b = subgraph(T_ID, [], [], [node(1, S_ID, [], [])], [])
    assert "contains itself" in rejects(workflow([node(5, S_ID, [], [])], [], [a, b])).error.details


def test_deeply_nested_subgraphs_are_bounded() -> None:
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(40)]
    defs = [subgraph(ids[i], [], [], [node(1, ids[i + 1], [], [])] if i + 1 < len(ids) else [],
                     []) for i in range(len(ids))]
    assert "nested" in rejects(workflow([node(5, ids[0], [], [])], [], defs)).error.details


def test_exponential_subgraph_expansion_is_bounded() -> None:
    ids = [f"{i:08x}-1111-4000-8000-000000000000" for i in range(12)]
    defs = []
    for i, sg_id in enumerate(ids):
        inner = ([node(k, ids[i + 1], [], []) for k in range(1, 5)] if i + 1 < len(ids)
                 else [node(1, "EmptyLatentImage", [], ["LATENT"], [64, 64, 1])])
        defs.append(subgraph(sg_id, [], [], inner, []))
    assert "more than" in rejects(workflow([node(5, ids[0], [], [])], [], defs)).error.details


# --- seeded mutation fuzzer --------------------------------------------------------------------

JUNK: list[Any] = [None, True, False, 0, -1, -10, -20, 2**70, 1.5, float("nan"), "", "x", "-10",
                   S_ID, "Reroute", "PrimitiveNode", [], [1], [1, 2, 3, 4, 5, 6], {}, {"a": 1},
                   {"name": "x"}]


def _containers(value: Any, out: list[Any]) -> None:
    if isinstance(value, (dict, list)):
        out.append(value)
        for child in (value.values() if isinstance(value, dict) else value):
            _containers(child, out)


def mutate(data: Any, rng: random.Random) -> None:
    found: list[Any] = []
    _containers(data, found)
    target = rng.choice(found)
    keys = list(target) if isinstance(target, dict) else list(range(len(target)))
    if not keys:
        return
    key = rng.choice(keys)
    action = rng.random()
    if action < 0.6:
        target[key] = copy.deepcopy(rng.choice(JUNK))
    elif action < 0.8:
        del target[key]
    elif isinstance(target, list):
        target.insert(rng.randrange(len(target) + 1), copy.deepcopy(target[key]))
    else:
        target[key] = copy.deepcopy(rng.choice(found[:50]))  # graft another piece in


def seeds() -> list[dict[str, Any]]:
    nodes = default_graph_nodes() + [
        node(20, "Reroute", [inp("", "*", 30)], ["*"]),
        node(21, "PrimitiveNode", [], ["INT"], [5, "fixed"]),
        node(22, "LoraLoader", [inp("model", "MODEL", 31)], ["MODEL", "CLIP"], ["a", 1, 1],
             mode=4)]
    links = DEFAULT_LINKS + [[30, 4, 1, 20, 0, "*"], [31, 20, 0, 22, 0, "MODEL"]]
    return [workflow(nodes, links), subgraph_workflow(), subgraph_workflow([7, 30])]


def test_mutated_workflows_only_ever_raise_graph_validation_errors() -> None:
    rng = random.Random(20240601)
    outcomes = {"converted": 0, "rejected": 0}
    for seed in seeds():
        for _ in range(400):
            data = copy.deepcopy(seed)
            for _ in range(rng.randint(1, 4)):
                mutate(data, rng)
            try:
                prompt = workflow_to_prompt(data, REG)
            except GraphValidationError:
                outcomes["rejected"] += 1
                continue
            outcomes["converted"] += 1
            for node_id, body in prompt.items():  # whatever converts has the API shape
                assert isinstance(node_id, str) and isinstance(body["class_type"], str)
                assert isinstance(body["inputs"], dict)
                assert isinstance(body["_meta"]["title"], str)
                for value in body["inputs"].values():
                    if isinstance(value, list):
                        assert value[0] in prompt and isinstance(value[1], int)
    assert outcomes["converted"] > 50 and outcomes["rejected"] > 50, outcomes

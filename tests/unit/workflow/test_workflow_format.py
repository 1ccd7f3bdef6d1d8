"""UI workflow -> API prompt: each editor-only construct against a hand-written expected graph."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import (
    DEFAULT_LINKS,
    S_ID,
    default_api,
    default_graph_nodes,
    inp,
    node,
    nodes_by_id,
    small_registry,
    subgraph,
    subgraph_workflow,
    workflow,
)

from comfy_compat.workflow_format import workflow_to_prompt
from lego_backend.errors import GraphValidationError

DATA = Path(__file__).resolve().parents[2] / "data" / "workflows"
REG = small_registry()


def convert(data: dict[str, Any]) -> dict[str, Any]:
    return workflow_to_prompt(data, REG)


def test_default_graph_v04_file() -> None:
    data = json.loads((DATA / "default_graph_v04.json").read_text())
    expected = json.loads((DATA / "default_graph_v04.api.json").read_text())
    assert convert(data) == expected


def test_v1_link_objects_give_the_same_graph() -> None:
    data = json.loads((DATA / "default_graph_v04.json").read_text())
    expected = json.loads((DATA / "default_graph_v04.api.json").read_text())
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    data["links"] = [dict(zip(keys, link)) for link in data["links"]]
    data["version"] = 1
    assert convert(data) == expected


def test_helper_default_graph() -> None:
    assert convert(workflow(default_graph_nodes(), DEFAULT_LINKS)) == default_api()


def test_reroutes_are_resolved_through_chains() -> None:
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[6]["inputs"][0]["link"] = 11
    nodes += [node(20, "Reroute", [inp("", "*", 3)], ["CLIP"]),
              node(21, "Reroute", [inp("", "*", 10)], ["CLIP"])]
    links = [ln for ln in DEFAULT_LINKS if ln[0] not in (3, 5)] + [
        [3, 4, 1, 20, 0, "CLIP"], [10, 20, 0, 21, 0, "CLIP"],
        [11, 21, 0, 6, 0, "CLIP"], [5, 21, 0, 7, 0, "CLIP"]]
    assert convert(workflow(nodes, links)) == default_api()


def test_primitive_nodes_feed_constants_into_linked_widgets() -> None:
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[3]["inputs"][4]["link"] = 12  # seed, converted to an input
    by_id[6]["inputs"].append(inp("text", "STRING", 13, widget=True))
    nodes += [node(30, "PrimitiveNode", [], ["INT"], [777, "fixed"]),
              node(31, "PrimitiveNode", [], ["STRING"], ["a dog"])]
    links = DEFAULT_LINKS + [[12, 30, 0, 3, 4, "INT"], [13, 31, 0, 6, 1, "STRING"]]
    expected = default_api()
    expected["3"]["inputs"]["seed"] = 777
    expected["6"]["inputs"]["text"] = "a dog"
    assert convert(workflow(nodes, links)) == expected


def test_bypassed_node_passes_inputs_of_the_same_type_through() -> None:
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[3]["inputs"][0]["link"] = 20
    by_id[6]["inputs"][0]["link"] = 21
    by_id[7]["inputs"][0]["link"] = 22
    nodes += [
        node(10, "LoraLoader", [inp("model", "MODEL", 1), inp("clip", "CLIP", 3)],
             ["MODEL", "CLIP"], ["style.safetensors", 1.0, 1.0], mode=4),
        node(11, "LoraLoader", [inp("model", "MODEL", 23), inp("clip", "CLIP", 24)],
             ["MODEL", "CLIP"], ["style2.safetensors", 1.0, 1.0], mode=4),
    ]
    # 4 -> lora 10 (bypassed) -> lora 11 (bypassed) -> sampler / encoders
    links = [ln for ln in DEFAULT_LINKS if ln[0] not in (1, 3, 5)] + [
        [1, 4, 0, 10, 0, "MODEL"], [3, 4, 1, 10, 1, "CLIP"],
        [23, 10, 0, 11, 0, "MODEL"], [24, 10, 1, 11, 1, "CLIP"],
        [20, 11, 0, 3, 0, "MODEL"], [21, 11, 1, 6, 0, "CLIP"], [22, 11, 1, 7, 0, "CLIP"]]
    assert convert(workflow(nodes, links)) == default_api()


def test_bypass_prefers_the_input_at_the_same_index() -> None:
    """ControlNetApplyAdvanced has two CONDITIONING ins and outs: negative must stay negative."""
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[3]["inputs"][1]["link"] = 30
    by_id[3]["inputs"][2]["link"] = 31
    nodes += [
        node(11, "ControlNetLoader", [], ["CONTROL_NET"], ["canny.safetensors"]),
        node(12, "LoadImage", [], ["IMAGE", "MASK"], ["edges.png", "image"]),
        node(13, "ControlNetApplyAdvanced",
             [inp("positive", "CONDITIONING", 4), inp("negative", "CONDITIONING", 6),
              inp("control_net", "CONTROL_NET", 32), inp("image", "IMAGE", 33)],
             ["CONDITIONING", "CONDITIONING"], [0.8, 0.0, 1.0], mode=4),
    ]
    links = [ln for ln in DEFAULT_LINKS if ln[0] not in (4, 6)] + [
        [4, 6, 0, 13, 0, "CONDITIONING"], [6, 7, 0, 13, 1, "CONDITIONING"],
        [32, 11, 0, 13, 2, "CONTROL_NET"], [33, 12, 0, 13, 3, "IMAGE"],
        [30, 13, 0, 3, 1, "CONDITIONING"], [31, 13, 1, 3, 2, "CONDITIONING"]]
    expected = default_api()
    expected["11"] = {"inputs": {"control_net_name": "canny.safetensors"},
                      "class_type": "ControlNetLoader",
                      "_meta": {"title": "Load ControlNet Model"}}
    expected["12"] = {"inputs": {"image": "edges.png"}, "class_type": "LoadImage",
                      "_meta": {"title": "Load Image"}}
    assert convert(workflow(nodes, links)) == expected


def test_bypass_without_a_matching_input_drops_the_consumer_input() -> None:
    nodes = default_graph_nodes()
    nodes_by_id(nodes)[8]["mode"] = 4  # VAEDecode: LATENT/VAE in, IMAGE out
    expected = default_api()
    del expected["8"]
    del expected["9"]["inputs"]["images"]
    assert convert(workflow(nodes, DEFAULT_LINKS)) == expected


def test_muted_nodes_and_their_links_are_dropped() -> None:
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[3]["inputs"][0]["link"] = 20
    by_id[3]["inputs"][4]["link"] = 25  # seed linked from a muted primitive
    nodes += [
        node(10, "LoraLoader", [inp("model", "MODEL", 1), inp("clip", "CLIP", None)],
             ["MODEL", "CLIP"], ["style.safetensors", 1.0, 1.0], mode=2),
        node(40, "PrimitiveNode", [], ["INT"], [5, "fixed"], mode=2),
        node(41, "NoSuchCustomNode", [], ["IMAGE"], [], mode=2),
        node(42, "AnotherCustomNode", [], ["IMAGE"], [], mode=4),
    ]
    links = [ln for ln in DEFAULT_LINKS if ln[0] != 1] + [
        [1, 4, 0, 10, 0, "MODEL"], [20, 10, 0, 3, 0, "MODEL"], [25, 40, 0, 3, 4, "INT"]]
    expected = default_api()
    del expected["3"]["inputs"]["model"]  # socket fed by a muted node: gone
    assert convert(workflow(nodes, links)) == expected  # seed keeps its own widget value


def test_notes_groups_and_stale_links_are_ignored() -> None:
    nodes = default_graph_nodes()
    nodes_by_id(nodes)[9]["inputs"].append(inp("extra", "IMAGE", 999))  # no link 999
    nodes += [node(50, "Note", [], [], ["remember"]), node(51, "MarkdownNote", [], [], ["# x"])]
    data = workflow(nodes, DEFAULT_LINKS)
    data["groups"] = [{"id": 1, "title": "G", "bounding": [0, 0, 10, 10]}]
    assert convert(data) == default_api()


def test_titles_come_from_the_node_else_the_display_name() -> None:
    nodes = default_graph_nodes()
    nodes_by_id(nodes)[6]["title"] = "Positive"
    out = convert(workflow(nodes, DEFAULT_LINKS))
    assert out["6"]["_meta"]["title"] == "Positive"
    assert out["7"]["_meta"]["title"] == "CLIP Text Encode (Prompt)"


def test_widgets_values_as_object_keyed_by_name() -> None:
    nodes = default_graph_nodes()
    by_id = nodes_by_id(nodes)
    by_id[3]["widgets_values"] = {"seed": 5, "control_after_generate": "fixed", "steps": 10,
                                  "cfg": 3.5, "sampler_name": "dpmpp_2m",
                                  "scheduler": "karras", "denoise": 0.5}
    by_id[5]["widgets_values"] = {"width": 768}
    expected = default_api()
    expected["3"]["inputs"].update(seed=5, steps=10, cfg=3.5, sampler_name="dpmpp_2m",
                                   scheduler="karras", denoise=0.5)
    expected["5"]["inputs"].update(width=768, height=512, batch_size=1)  # defaults fill in
    assert convert(workflow(nodes, DEFAULT_LINKS)) == expected


@pytest.mark.parametrize("values", [
    [42, "randomize", 20, 7.5, "euler", "normal", 1.0],  # control slot skipped
    [42, "increment", 20, 7.5, "euler", "normal", 1.0],
    [42, 20, 7.5, "euler", "normal", 1.0],  # very old file: no control slot
])
def test_control_after_generate_slot_is_ui_only(values: list[Any]) -> None:
    nodes = default_graph_nodes()
    nodes_by_id(nodes)[3]["widgets_values"] = values
    assert convert(workflow(nodes, DEFAULT_LINKS)) == default_api()


@pytest.mark.parametrize("values", [
    ["cat.png", "image"], ["cat.png", "upload"], ["cat.png"],
    ["cat.png", {"name": "upload", "type": "button", "options": {"serialize": False}}],
])
def test_load_image_upload_slot_is_ui_only(values: list[Any]) -> None:
    out = convert(workflow([node(1, "LoadImage", [], ["IMAGE", "MASK"], values)], []))
    assert out == {"1": {"inputs": {"image": "cat.png"}, "class_type": "LoadImage",
                         "_meta": {"title": "Load Image"}}}


def test_missing_widget_values_take_defaults_and_lists_are_wrapped() -> None:
    out = convert(workflow([node(1, "Toggle", [], ["INT"], [False]),
                            node(2, "Toggle", [], ["INT"], [True, ["a", "b"], 4])], []))
    assert out["1"]["inputs"] == {"enabled": False, "mode": "a", "extra": 3}
    assert out["2"]["inputs"] == {"enabled": True, "mode": {"__value__": ["a", "b"]}, "extra": 4}


def test_every_unsupported_node_type_is_listed_once() -> None:
    inner = subgraph("11111111-2222-4333-8444-555555555555", [], [],
                     [node(1, "BazNode", [], ["IMAGE"]), node(2, "BarNode", [], ["IMAGE"])], [])
    nodes = default_graph_nodes() + [
        node(60, "FooNode", [], ["IMAGE"]), node(61, "BarNode", [], ["IMAGE"]),
        node(62, "MutedOnly", [], ["IMAGE"], mode=2),
        node(63, "BypassedOnly", [], ["IMAGE"], mode=4),
        node(64, inner["id"], [], []),
    ]
    with pytest.raises(GraphValidationError) as info:
        convert(workflow(nodes, DEFAULT_LINKS, [inner]))
    err = info.value.error
    assert err.type == "unsupported_nodes"
    assert err.message == "Workflow uses node types this server does not have"
    assert err.details == "BarNode, BazNode, FooNode"
    assert err.extra_info == {"missing_node_types": ["BarNode", "BazNode", "FooNode"]}


# --- subgraphs -------------------------------------------------------------------------------

def subgraph_expected() -> dict[str, Any]:
    base = default_api()
    return {
        "4": base["4"], "5": base["5"],
        "10:1:1": {"inputs": {"text": "meadow", "clip": ["4", 1]},
                   "class_type": "CLIPTextEncode",
                   "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "10:1:2": {"inputs": {"text": "ugly", "clip": ["4", 1]},
                   "class_type": "CLIPTextEncode",
                   "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "10:2": {"inputs": {"seed": 99, "steps": 12, "cfg": 6.0, "sampler_name": "euler",
                            "scheduler": "karras", "denoise": 1.0, "model": ["4", 0],
                            "positive": ["10:1:1", 0], "negative": ["10:1:2", 0],
                            "latent_image": ["5", 0]},
                 "class_type": "KSampler", "_meta": {"title": "KSampler"}},
        "8": {"inputs": {"samples": ["10:2", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
              "_meta": {"title": "VAE Decode"}},
        "9": base["9"],
    }


def test_subgraphs_flatten_with_nested_path_ids() -> None:
    assert convert(subgraph_workflow()) == subgraph_expected()


def test_older_instances_carry_promoted_widget_values() -> None:
    """Files from editors that stored promoted widget values on the instance itself: one value
    per widget-typed subgraph input (seed, steps); a linked instance input still wins."""
    expected = subgraph_expected()
    expected["10:2"]["inputs"]["steps"] = 30
    assert convert(subgraph_workflow([7, 30])) == expected


def test_promoted_values_that_do_not_fit_are_ignored() -> None:
    """Three values for two promoted widgets: the file is not understood, inner values apply."""
    assert convert(subgraph_workflow([7, 30, 5])) == subgraph_expected()


def test_muted_and_bypassed_subgraph_instances() -> None:
    data = subgraph_workflow()
    nodes_by_id(data["nodes"])[10]["mode"] = 2
    out = convert(data)
    assert not any(k.startswith("10:") for k in out)
    assert "samples" not in out["8"]["inputs"]
    nodes_by_id(data["nodes"])[10]["mode"] = 4  # LATENT out <- the instance's LATENT in
    out = convert(data)
    assert not any(k.startswith("10:") for k in out)
    assert out["8"]["inputs"]["samples"] == ["5", 0]


def test_subgraph_output_fed_straight_from_a_subgraph_input() -> None:
    passthrough = subgraph(S_ID, [("x", "LATENT", [1])], [("y", "LATENT", [1])], [],
                           [[1, -10, 0, -20, 0, "LATENT"]])
    nodes = [node(5, "EmptyLatentImage", [], ["LATENT"], [64, 64, 1]),
             node(10, S_ID, [inp("x", "LATENT", 1)], ["LATENT"]),
             node(8, "VAEDecode", [inp("samples", "LATENT", 2)], ["IMAGE"])]
    out = convert(workflow(nodes, [[1, 5, 0, 10, 0, "LATENT"], [2, 10, 0, 8, 0, "LATENT"]],
                           [passthrough]))
    assert out["8"]["inputs"] == {"samples": ["5", 0]}


def test_input_is_not_mutated() -> None:
    data = subgraph_workflow()
    before = copy.deepcopy(data)
    convert(data)
    assert data == before

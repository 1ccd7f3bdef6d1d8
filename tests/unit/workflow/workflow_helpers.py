"""A small torch-free registry shaped like ComfyUI's core nodes, and builders for UI-format
workflow JSON, so each test states only the nodes and links it is about."""
from __future__ import annotations

from typing import Any

from node_library.inputs import BOOLEAN, COMBO, FLOAT, INT, MAX_SEED, OUT, SOCKET, STRING
from node_library.registry import NodeRegistry
from node_library.spec import InputSpec, NodeOutput, NodeSpec

SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m")
SCHEDULERS = ("normal", "karras", "simple")


def _noop(ctx: Any, **kw: Any) -> NodeOutput:
    return NodeOutput(())


def small_registry() -> NodeRegistry:
    return NodeRegistry([
        NodeSpec("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
                 (COMBO("ckpt_name", choices_from="checkpoints"),),
                 (OUT("MODEL"), OUT("CLIP"), OUT("VAE")), _noop),
        NodeSpec("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
                 (STRING("text", multiline=True), SOCKET("clip", "CLIP")),
                 (OUT("CONDITIONING"),), _noop),
        NodeSpec("EmptyLatentImage", "Empty Latent Image", "latent",
                 (INT("width", 512, 16, 16384, 8), INT("height", 512, 16, 16384, 8),
                  INT("batch_size", 1, 1, 4096)), (OUT("LATENT"),), _noop),
        NodeSpec("KSampler", "KSampler", "sampling",
                 (SOCKET("model", "MODEL"),
                  INT("seed", 0, 0, MAX_SEED, control_after_generate=True),
                  INT("steps", 20, 1, 10000), FLOAT("cfg", 8.0, 0.0, 100.0),
                  COMBO("sampler_name", SAMPLERS), COMBO("scheduler", SCHEDULERS),
                  SOCKET("positive", "CONDITIONING"), SOCKET("negative", "CONDITIONING"),
                  SOCKET("latent_image", "LATENT"), FLOAT("denoise", 1.0, 0.0, 1.0)),
                 (OUT("LATENT"),), _noop),
        NodeSpec("VAEDecode", "VAE Decode", "latent",
                 (SOCKET("samples", "LATENT"), SOCKET("vae", "VAE")), (OUT("IMAGE"),), _noop),
        NodeSpec("SaveImage", "Save Image", "image",
                 (SOCKET("images", "IMAGE"), STRING("filename_prefix", "ComfyUI")), (), _noop,
                 output_node=True),
        NodeSpec("LoadImage", "Load Image", "image",
                 (InputSpec("image", "COMBO", choices_from="input_images", image_upload=True),),
                 (OUT("IMAGE"), OUT("MASK")), _noop),
        NodeSpec("LoraLoader", "Load LoRA", "loaders",
                 (SOCKET("model", "MODEL"), SOCKET("clip", "CLIP"),
                  COMBO("lora_name", choices_from="loras"),
                  FLOAT("strength_model", 1.0, -100.0, 100.0),
                  FLOAT("strength_clip", 1.0, -100.0, 100.0)),
                 (OUT("MODEL"), OUT("CLIP")), _noop),
        NodeSpec("ControlNetLoader", "Load ControlNet Model", "loaders",
                 (COMBO("control_net_name", choices_from="controlnet"),),
                 (OUT("CONTROL_NET"),), _noop),
        NodeSpec("ControlNetApplyAdvanced", "Apply ControlNet", "conditioning",
                 (SOCKET("positive", "CONDITIONING"), SOCKET("negative", "CONDITIONING"),
                  SOCKET("control_net", "CONTROL_NET"), SOCKET("image", "IMAGE"),
                  FLOAT("strength", 1.0, 0.0, 10.0), FLOAT("start_percent", 0.0, 0.0, 1.0),
                  FLOAT("end_percent", 1.0, 0.0, 1.0), SOCKET("vae", "VAE", "optional")),
                 (OUT("CONDITIONING", "positive"), OUT("CONDITIONING", "negative")), _noop),
        NodeSpec("Toggle", "Toggle", "test",
                 (BOOLEAN("enabled", True), COMBO("mode", ("a", "b")),
                  INT("extra", 3, 0, 10, section="optional")), (OUT("INT"),), _noop),
    ])


def inp(name: str, type_: str, link: int | None = None, widget: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": type_, "link": link}
    if widget:
        body["widget"] = {"name": name}
    return body


def node(id_: int | str, type_: str, inputs: list[dict[str, Any]] | None = None,
         outputs: list[str] | None = None, widgets: Any = None, mode: int = 0,
         title: str | None = None) -> dict[str, Any]:
    """A UI node; `outputs` lists output types (names = types), links filled by `wire`."""
    body: dict[str, Any] = {
        "id": id_, "type": type_, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": 0,
        "mode": mode, "inputs": inputs or [],
        "outputs": [{"name": t, "type": t, "links": []} for t in (outputs or [])],
        "properties": {"Node name for S&R": type_},
    }
    if widgets is not None:
        body["widgets_values"] = widgets
    if title is not None:
        body["title"] = title
    return body


def workflow(nodes: list[dict[str, Any]], links: list[list[Any]],
             subgraphs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"last_node_id": 99, "last_link_id": 99, "nodes": nodes,
                            "links": links, "groups": [], "config": {}, "extra": {},
                            "version": 0.4}
    if subgraphs:
        data["definitions"] = {"subgraphs": subgraphs}
    return data


def default_graph_nodes() -> list[dict[str, Any]]:
    """ComfyUI's default text-to-image graph (ids 3..9), wired by DEFAULT_LINKS."""
    return [
        node(4, "CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"],
             widgets=["sd15.safetensors"]),
        node(5, "EmptyLatentImage", outputs=["LATENT"], widgets=[512, 512, 1]),
        node(6, "CLIPTextEncode", [inp("clip", "CLIP", 3)], ["CONDITIONING"], ["a cat"]),
        node(7, "CLIPTextEncode", [inp("clip", "CLIP", 5)], ["CONDITIONING"], ["blurry"]),
        node(3, "KSampler",
             [inp("model", "MODEL", 1), inp("positive", "CONDITIONING", 4),
              inp("negative", "CONDITIONING", 6), inp("latent_image", "LATENT", 2),
              inp("seed", "INT", None, widget=True)],
             ["LATENT"], [42, "fixed", 20, 7.5, "euler", "normal", 1.0]),
        node(8, "VAEDecode", [inp("samples", "LATENT", 7), inp("vae", "VAE", 8)], ["IMAGE"]),
        node(9, "SaveImage", [inp("images", "IMAGE", 9)], [], ["out"]),
    ]


DEFAULT_LINKS: list[list[Any]] = [
    [1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"],
    [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"],
    [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"],
]


def default_api() -> dict[str, Any]:
    """The API graph default_graph_nodes() + DEFAULT_LINKS must convert to."""
    return {
        "4": {"inputs": {"ckpt_name": "sd15.safetensors"}, "class_type": "CheckpointLoaderSimple",
              "_meta": {"title": "Load Checkpoint"}},
        "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1},
              "class_type": "EmptyLatentImage", "_meta": {"title": "Empty Latent Image"}},
        "6": {"inputs": {"text": "a cat", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "7": {"inputs": {"text": "blurry", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Prompt)"}},
        "3": {"inputs": {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
                         "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                         "positive": ["6", 0], "negative": ["7", 0],
                         "latent_image": ["5", 0]},
              "class_type": "KSampler", "_meta": {"title": "KSampler"}},
        "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
              "_meta": {"title": "VAE Decode"}},
        "9": {"inputs": {"images": ["8", 0], "filename_prefix": "out"},
              "class_type": "SaveImage", "_meta": {"title": "Save Image"}},
    }


def nodes_by_id(nodes: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {n["id"]: n for n in nodes}


# --- subgraphs -------------------------------------------------------------------------------

S_ID = "11111111-2222-4333-8444-555555555555"  # sampler section
T_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"  # prompts, nested inside S


def subgraph(id_: str, inputs: list[tuple[str, str, list[int]]],
             outputs: list[tuple[str, str, list[int]]], nodes: list[dict[str, Any]],
             links: list[list[Any]]) -> dict[str, Any]:
    """A v1-style definition; links given as arrays, stored as objects like the editor does."""
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    return {
        "id": id_, "version": 1, "state": {}, "revision": 0, "config": {}, "name": id_[:4],
        "inputNode": {"id": -10, "bounding": [0, 0, 10, 10]},
        "outputNode": {"id": -20, "bounding": [0, 0, 10, 10]},
        "inputs": [{"id": f"in{i}", "name": n, "type": t, "linkIds": ids}
                   for i, (n, t, ids) in enumerate(inputs)],
        "outputs": [{"id": f"out{i}", "name": n, "type": t, "linkIds": ids}
                    for i, (n, t, ids) in enumerate(outputs)],
        "widgets": [], "nodes": nodes, "links": [dict(zip(keys, ln)) for ln in links],
        "groups": [], "extra": {},
    }


def prompts_subgraph() -> dict[str, Any]:
    return subgraph(
        T_ID, [("clip", "CLIP", [201, 202])],
        [("positive", "CONDITIONING", [203]), ("negative", "CONDITIONING", [204])],
        [node(1, "CLIPTextEncode", [inp("clip", "CLIP", 201)], ["CONDITIONING"], ["meadow"]),
         node(2, "CLIPTextEncode", [inp("clip", "CLIP", 202)], ["CONDITIONING"], ["ugly"])],
        [[201, -10, 0, 1, 0, "CLIP"], [202, -10, 0, 2, 0, "CLIP"],
         [203, 1, 0, -20, 0, "CONDITIONING"], [204, 2, 0, -20, 1, "CONDITIONING"]])


def sampler_subgraph() -> dict[str, Any]:
    return subgraph(
        S_ID,
        [("model", "MODEL", [101]), ("clip", "CLIP", [102]), ("latent_image", "LATENT", [103]),
         ("seed", "INT", [104]), ("steps", "INT", [105])],
        [("LATENT", "LATENT", [106])],
        [node(1, T_ID, [inp("clip", "CLIP", 102)], ["CONDITIONING", "CONDITIONING"]),
         node(2, "KSampler",
              [inp("model", "MODEL", 101), inp("positive", "CONDITIONING", 107),
               inp("negative", "CONDITIONING", 108), inp("latent_image", "LATENT", 103),
               inp("seed", "INT", 104, widget=True), inp("steps", "INT", 105, widget=True)],
              ["LATENT"], [1, "randomize", 12, 6.0, "euler", "karras", 1.0])],
        [[101, -10, 0, 2, 0, "MODEL"], [102, -10, 1, 1, 0, "CLIP"],
         [103, -10, 2, 2, 3, "LATENT"], [104, -10, 3, 2, 4, "INT"], [105, -10, 4, 2, 5, "INT"],
         [106, 2, 0, -20, 0, "LATENT"], [107, 1, 0, 2, 1, "CONDITIONING"],
         [108, 1, 1, 2, 2, "CONDITIONING"]])


def subgraph_workflow(instance_widgets: Any = None) -> dict[str, Any]:
    nodes = [n for n in default_graph_nodes() if n["id"] in (4, 5, 8, 9)]
    nodes_by_id(nodes)[8]["inputs"][0]["link"] = 7
    # The instance lists only some subgraph inputs (steps is a promoted widget elsewhere).
    nodes += [
        node(10, S_ID, [inp("model", "MODEL", 1), inp("clip", "CLIP", 3),
                        inp("latent_image", "LATENT", 2), inp("seed", "INT", 12, widget=True)],
             ["LATENT"], instance_widgets),
        node(30, "PrimitiveNode", [], ["INT"], [99, "fixed"]),
    ]
    links = [[1, 4, 0, 10, 0, "MODEL"], [3, 4, 1, 10, 1, "CLIP"], [2, 5, 0, 10, 2, "LATENT"],
             [7, 10, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"],
             [12, 30, 0, 10, 3, "INT"]]
    return workflow(nodes, links, [sampler_subgraph(), prompts_subgraph()])

"""A tiny editor-file writer used by build.py: places nodes on a canvas, wires slots by name and
writes the editor's v0.4 save format (nodes, links arrays, groups, definitions.subgraphs).

Socket lists are written out here from the protocol facts (../shared/comfyui-protocol.md §6 and
the public node signatures), not read from our node registry, so the saved files do not simply
mirror what the converter expects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Slots = list[tuple[str, str]]

SOCKETS: dict[str, tuple[Slots, Slots]] = {  # type -> (socket inputs, outputs)
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"),
                  ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
                 [("LATENT", "LATENT")]),
    "KSamplerAdvanced": ([("model", "MODEL"), ("positive", "CONDITIONING"),
                          ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
                         [("LATENT", "LATENT")]),
    "EmptyLatentImage": ([], [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "VAEEncodeForInpaint": ([("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK")],
                            [("LATENT", "LATENT")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScaleToTotalPixels": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImageScaleBy": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImagePadForOutpaint": ([("image", "IMAGE")], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "LoraLoader": ([("model", "MODEL"), ("clip", "CLIP")], [("MODEL", "MODEL"), ("CLIP", "CLIP")]),
    "VAELoader": ([], [("VAE", "VAE")]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApply": ([("conditioning", "CONDITIONING"), ("control_net", "CONTROL_NET"),
                         ("image", "IMAGE")], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetApplyAdvanced": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                 ("control_net", "CONTROL_NET"), ("image", "IMAGE"),
                                 ("vae", "VAE")],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
    "Canny": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "UpscaleModelLoader": ([], [("UPSCALE_MODEL", "UPSCALE_MODEL")]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL"), ("image", "IMAGE")],
                              [("IMAGE", "IMAGE")]),
    "LatentUpscale": ([("samples", "LATENT")], [("LATENT", "LATENT")]),
    "LatentUpscaleBy": ([("samples", "LATENT")], [("LATENT", "LATENT")]),
    "ConditioningSetArea": ([("conditioning", "CONDITIONING")],
                            [("CONDITIONING", "CONDITIONING")]),
    "ConditioningCombine": ([("conditioning_1", "CONDITIONING"),
                             ("conditioning_2", "CONDITIONING")],
                            [("CONDITIONING", "CONDITIONING")]),
    "CLIPSetLastLayer": ([("clip", "CLIP")], [("CLIP", "CLIP")]),
    "Note": ([], []),
}
COLUMN, ROW = 360, 240  # canvas grid in editor pixels


@dataclass
class Canvas:
    """One graph: the root of a file, or the inside of a subgraph definition."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    links: list[list[Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    io_inputs: list[dict[str, Any]] = field(default_factory=list)  # subgraph boundary only
    io_outputs: list[dict[str, Any]] = field(default_factory=list)
    link_base: int = 0  # subgraph link ids start higher so they are easy to tell apart
    last_node: int = 0  # ids are never reused, even after a node or link is removed
    last_link: int = 0

    def _node(self, type_: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
              widgets: list[Any] | None, at: tuple[float, float], title: str | None,
              mode: int, size: tuple[int, int]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self._node_id(), "type": type_,
            "pos": [40 + at[0] * COLUMN, 40 + at[1] * ROW], "size": list(size), "flags": {},
            "order": len(self.nodes), "mode": mode, "inputs": inputs, "outputs": outputs,
            "properties": {"Node name for S&R": type_},
        }
        if widgets is not None:
            body["widgets_values"] = widgets
        if title is not None:
            body["title"] = title
        self.nodes.append(body)
        return body

    def add(self, type_: str, widgets: list[Any] | None = None, *,
            at: tuple[float, float] = (0, 0), title: str | None = None, mode: int = 0,
            widget_inputs: Slots = (), size: tuple[int, int] = (320, 120)) -> dict[str, Any]:
        """A node; `widget_inputs` are widgets turned into sockets (fed by a link)."""
        ins, outs = SOCKETS[type_]
        inputs = [{"name": n, "type": t, "link": None} for n, t in ins]
        inputs += [{"name": n, "type": t, "widget": {"name": n}, "link": None}
                   for n, t in widget_inputs]
        outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                   for i, (n, t) in enumerate(outs)]
        return self._node(type_, inputs, outputs, widgets, at, title, mode, size)

    def reroute(self, type_: str, at: tuple[float, float]) -> dict[str, Any]:
        node = self._node("Reroute", [{"name": "", "type": "*", "link": None}],
                          [{"name": "", "type": type_, "links": [], "slot_index": 0}],
                          None, at, None, 0, (75, 26))
        node["properties"] = {"showOutputText": False, "horizontal": False}
        return node

    def primitive(self, type_: str, widget: str, value: Any, at: tuple[float, float],
                  title: str) -> dict[str, Any]:
        widgets = [value, "fixed"] if widget in ("seed", "noise_seed") else [value]
        node = self._node("PrimitiveNode", [],
                          [{"name": type_, "type": type_, "links": [], "slot_index": 0,
                            "widget": {"name": widget}}], widgets, at, title, 0, (300, 82))
        node["properties"] = {"Run widget replace on values": False}
        return node

    def subgraph_node(self, definition: dict[str, Any], *, at: tuple[float, float],
                      title: str) -> dict[str, Any]:
        inputs = [{"name": io["name"], "type": io["type"], "link": None}
                  for io in definition["inputs"]]
        outputs = [{"name": io["name"], "type": io["type"], "links": [], "slot_index": i}
                   for i, io in enumerate(definition["outputs"])]
        return self._node(definition["id"], inputs, outputs, [], at, title, 0, (340, 140))

    def _node_id(self) -> int:
        self.last_node += 1
        return self.last_node

    def _link_id(self) -> int:
        self.last_link += 1
        return self.link_base + self.last_link

    def wire(self, src: dict[str, Any], slot: int, dst: dict[str, Any], name: str) -> None:
        index = next(i for i, inp in enumerate(dst["inputs"]) if inp["name"] == name)
        link = self._link_id()
        type_ = src["outputs"][slot]["type"]
        self.links.append([link, src["id"], slot, dst["id"], index, type_])
        src["outputs"][slot]["links"].append(link)
        dst["inputs"][index]["link"] = link

    def group(self, title: str, x: float, y: float, w: float, h: float,
              color: str = "#3f789e") -> None:
        self.groups.append({"id": len(self.groups) + 1, "title": title,
                            "bounding": [40 + x * COLUMN - 20, 40 + y * ROW - 50,
                                         w * COLUMN, h * ROW], "color": color,
                            "font_size": 24, "flags": {}})

    # --- subgraph boundary ---------------------------------------------------------------------
    def boundary_in(self, name: str, type_: str, targets: list[tuple[dict[str, Any], str]]
                    ) -> None:
        """A subgraph input named `name` feeding each (node, input name)."""
        slot = len(self.io_inputs)
        ids = []
        for dst, input_name in targets:
            index = next(i for i, inp in enumerate(dst["inputs"]) if inp["name"] == input_name)
            link = self._link_id()
            self.links.append([link, -10, slot, dst["id"], index, type_])
            dst["inputs"][index]["link"] = link
            ids.append(link)
        self.io_inputs.append({"id": f"{name}-in", "name": name, "type": type_,
                               "linkIds": ids})

    def boundary_out(self, name: str, src: dict[str, Any], slot: int) -> None:
        link = self._link_id()
        type_ = src["outputs"][slot]["type"]
        self.links.append([link, src["id"], slot, -20, len(self.io_outputs), type_])
        src["outputs"][slot]["links"].append(link)
        self.io_outputs.append({"id": f"{name}-out", "name": name, "type": type_,
                                "linkIds": [link]})

    def _tidy(self) -> None:
        """Drop link ids left on output slots by links the builder removed."""
        live = {ln[0] for ln in self.links}
        for node in self.nodes:
            for out in node["outputs"]:
                out["links"] = [x for x in out["links"] if x in live]

    def definition(self, uuid: str, name: str) -> dict[str, Any]:
        """This canvas as a subgraph definition (v1 style: links are objects)."""
        self._tidy()
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
        return {
            "id": uuid, "version": 1, "revision": 0, "name": name,
            "state": {"lastNodeId": self.last_node, "lastLinkId": self.link_base + self.last_link,
                      "lastGroupId": 0, "lastRerouteId": 0},
            "config": {}, "inputNode": {"id": -10, "bounding": [-200, 0, 120, 140]},
            "outputNode": {"id": -20, "bounding": [800, 0, 120, 60]},
            "inputs": self.io_inputs, "outputs": self.io_outputs, "widgets": [],
            "nodes": self.nodes, "links": [dict(zip(keys, ln)) for ln in self.links],
            "groups": [], "extra": {},
        }

    def save(self, uuid: str, subgraphs: list[dict[str, Any]] = ()) -> dict[str, Any]:
        self._tidy()
        body: dict[str, Any] = {
            "id": uuid, "revision": 0, "last_node_id": self.last_node,
            "last_link_id": self.link_base + self.last_link, "nodes": self.nodes, "links": self.links,
            "groups": self.groups, "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
        }
        if subgraphs:
            body["definitions"] = {"subgraphs": list(subgraphs)}
        return body

"""UI-format workflow JSON -> checked plain data (nodes, links, subgraph definitions).

The editor's saved files come in two link schemas (v0.4 arrays, v1 objects) and carry lots of
layout data we do not need. Parsing once into small typed records lets the resolver work on
trusted shapes: every malformed piece is reported here as a GraphValidationError naming where
it is, so no KeyError/TypeError can escape from later stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lego_backend.errors import GraphValidationError, ValidationReason

SUBGRAPH_INPUT_ID = "-10"  # id of a subgraph's input pseudo-node (link origin)
SUBGRAPH_OUTPUT_ID = "-20"  # id of a subgraph's output pseudo-node (link target)
MAX_DEFINITION_DEPTH = 32  # definitions nested inside definitions; real files use 1


def malformed(details: str, where: str = "") -> GraphValidationError:
    """The error for any structural problem; `where` is a JSON-ish path to the bad piece."""
    text = f"{where}: {details}" if where else details
    return GraphValidationError(ValidationReason(
        "invalid_workflow", "Workflow is malformed and cannot be converted", text,
        {"where": where} if where else {}), {})


@dataclass(frozen=True)
class UIInput:
    name: str  # slot name (== API input name unless `widget` says otherwise)
    type: str  # socket type, "*" if absent
    link: str | None  # id of the link feeding this slot
    widget: str | None  # name of the widget this slot stands for (converted/promoted widget)

    @property
    def api_name(self) -> str:
        return self.widget or self.name


@dataclass(frozen=True)
class UIOutput:
    name: str
    type: str


@dataclass(frozen=True)
class UINode:
    id: str
    type: str
    mode: int  # 0 always, 2 never (muted), 4 bypass; others run like 0
    title: str | None
    inputs: tuple[UIInput, ...]
    outputs: tuple[UIOutput, ...]
    widgets_values: list[Any] | dict[str, Any] | None


@dataclass(frozen=True)
class UILink:
    id: str
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


@dataclass(frozen=True)
class SubgraphIO:
    name: str
    type: str
    link_ids: tuple[str, ...]


@dataclass
class UIGraph:
    """The root graph or one subgraph definition (then `id` is its uuid and io lists are set)."""

    id: str
    nodes: dict[str, UINode]  # in document order
    links: dict[str, UILink]
    inputs: list[SubgraphIO] = field(default_factory=list)
    outputs: list[SubgraphIO] = field(default_factory=list)


@dataclass
class ParsedWorkflow:
    root: UIGraph
    subgraphs: dict[str, UIGraph]  # uuid -> definition


def _id(value: Any, where: str) -> str:
    # bool is an int subclass; a true/false id is garbage, not node 1/0
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise malformed(f"expected a node/link id (integer or string), got {value!r:.60}", where)
    return str(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(f"expected an integer, got {value!r:.60}", where)
    return value


def _list(value: Any, where: str, allow_none: bool = True) -> list[Any]:
    if value is None and allow_none:
        return []
    if not isinstance(value, list):
        raise malformed(f"expected a list, got {type(value).__name__}", where)
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"expected an object, got {type(value).__name__}", where)
    return value


def _type(value: Any) -> str:
    # socket types are free strings; anything else (absent, odd) is treated as "any"
    return value if isinstance(value, str) and value else "*"


def _parse_input(raw: Any, where: str) -> UIInput:
    body = _dict(raw, where)
    name = body.get("name")
    if not isinstance(name, str):
        raise malformed("input slot has no string 'name'", where)
    link = body.get("link")
    widget = body.get("widget")
    widget_name = widget.get("name") if isinstance(widget, dict) else None
    return UIInput(name, _type(body.get("type")),
                   None if link is None else _id(link, f"{where}.link"),
                   widget_name if isinstance(widget_name, str) and widget_name else None)


def _parse_node(raw: Any, where: str) -> UINode:
    body = _dict(raw, where)
    node_id = _id(body.get("id"), f"{where}.id")
    type_ = body.get("type")
    if not isinstance(type_, str) or not type_:
        raise malformed("node has no string 'type'", f"{where}.type")
    mode = body.get("mode", 0)
    mode = 0 if mode is None else _int(mode, f"{where}.mode")
    title = body.get("title")
    inputs = tuple(_parse_input(item, f"{where}.inputs[{i}]")
                   for i, item in enumerate(_list(body.get("inputs"), f"{where}.inputs")))
    outputs = []
    for i, item in enumerate(_list(body.get("outputs"), f"{where}.outputs")):
        out = _dict(item, f"{where}.outputs[{i}]")
        outputs.append(UIOutput(str(out.get("name", "")), _type(out.get("type"))))
    values = body.get("widgets_values")
    if values is not None and not isinstance(values, (list, dict)):
        raise malformed("widgets_values must be a list or an object", f"{where}.widgets_values")
    return UINode(node_id, type_, mode, title if isinstance(title, str) else None,
                  inputs, tuple(outputs), values)


def _parse_link(raw: Any, where: str) -> UILink:
    if isinstance(raw, list):  # v0.4: [id, origin_id, origin_slot, target_id, target_slot, type]
        if len(raw) < 5:
            raise malformed("link array needs [id, origin, slot, target, slot, type]", where)
        fields = raw[:5] + [raw[5] if len(raw) > 5 else "*"]
    elif isinstance(raw, dict):  # v1 objects
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot")
        missing = [k for k in keys if k not in raw]
        if missing:
            raise malformed(f"link object lacks {', '.join(missing)}", where)
        fields = [raw[k] for k in keys] + [raw.get("type", "*")]
    else:
        raise malformed(f"a link must be a list or an object, got {type(raw).__name__}", where)
    return UILink(_id(fields[0], f"{where}.id"), _id(fields[1], f"{where}.origin_id"),
                  _int(fields[2], f"{where}.origin_slot"), _id(fields[3], f"{where}.target_id"),
                  _int(fields[4], f"{where}.target_slot"),
                  fields[5] if isinstance(fields[5], str) else "*")


def _parse_io(raw: Any, where: str) -> list[SubgraphIO]:
    out = []
    for i, item in enumerate(_list(raw, where)):
        body = _dict(item, f"{where}[{i}]")
        ids = _list(body.get("linkIds"), f"{where}[{i}].linkIds")
        out.append(SubgraphIO(str(body.get("name", "")), _type(body.get("type")),
                              tuple(_id(x, f"{where}[{i}].linkIds") for x in ids)))
    return out


def parse_graph(raw: Any, where: str, graph_id: str = "") -> UIGraph:
    body = _dict(raw, where)
    if "nodes" not in body:
        raise malformed("no 'nodes' list (is this a UI-format workflow?)", where or "workflow")
    nodes: dict[str, UINode] = {}
    for i, item in enumerate(_list(body.get("nodes"), f"{where}.nodes", allow_none=False)):
        node = _parse_node(item, f"{where}.nodes[{i}]")
        if node.id in nodes:
            raise malformed(f"duplicate node id {node.id}", f"{where}.nodes[{i}]")
        nodes[node.id] = node
    links: dict[str, UILink] = {}
    for i, item in enumerate(_list(body.get("links"), f"{where}.links")):
        if item is None:  # the editor leaves holes when links are deleted; harmless
            continue
        link = _parse_link(item, f"{where}.links[{i}]")
        links[link.id] = link
    graph = UIGraph(graph_id, nodes, links)
    if graph_id:
        graph.inputs = _parse_io(body.get("inputs"), f"{where}.inputs")
        graph.outputs = _parse_io(body.get("outputs"), f"{where}.outputs")
    return graph


def _collect_definitions(raw: Any, where: str, out: dict[str, UIGraph], depth: int) -> None:
    if raw is None:
        return
    if depth > MAX_DEFINITION_DEPTH:
        raise malformed("subgraph definitions nested too deeply", where)
    defs = _dict(raw, where)
    for i, item in enumerate(_list(defs.get("subgraphs"), f"{where}.subgraphs")):
        here = f"{where}.subgraphs[{i}]"
        body = _dict(item, here)
        sg_id = body.get("id")
        if not isinstance(sg_id, str) or not sg_id:
            raise malformed("subgraph definition has no string 'id'", here)
        if sg_id not in out:  # the editor may repeat a definition; first one wins
            out[sg_id] = parse_graph(body, here, sg_id)
        _collect_definitions(body.get("definitions"), f"{here}.definitions", out, depth + 1)


def parse_workflow(raw: Any) -> ParsedWorkflow:
    if not isinstance(raw, dict):
        raise malformed(f"a workflow must be a JSON object, got {type(raw).__name__}")
    if "nodes" not in raw and raw and all(isinstance(v, dict) and "class_type" in v
                                          for v in raw.values()):
        raise malformed("this is already an API-format prompt, not a UI workflow")
    root = parse_graph(raw, "workflow")
    subgraphs: dict[str, UIGraph] = {}
    _collect_definitions(raw.get("definitions"), "workflow.definitions", subgraphs, 0)
    return ParsedWorkflow(root, subgraphs)

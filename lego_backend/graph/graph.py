"""A parsed API-format prompt: plain data, nothing validated or looked up yet."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Link:
    """An input wired to output `slot` of node `node_id`."""

    node_id: str
    slot: int


@dataclass(frozen=True)
class Node:
    id: str
    class_type: Any  # normally str; kept raw so the compiler can report a missing/odd value
    inputs: dict[str, Any]  # name -> constant, Link, or a raw malformed value
    title: str = ""


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    raw: dict[str, Any]  # the prompt as submitted (for PNG metadata and history)


def unwrap_value(value: Any) -> Any:
    """ComfyUI wraps list-valued widgets as {"__value__": [...]}."""
    if isinstance(value, dict) and set(value) == {"__value__"}:
        return value["__value__"]
    return value


def parse_link(value: Any) -> Link | None:
    """A well-formed link is [node_id, slot] with a str/int id and an int slot."""
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int)
            and not isinstance(value[1], bool)):
        return Link(str(value[0]), value[1])
    return None


def looks_like_link(value: Any) -> bool:
    """A list is meant as a link (valid or not) unless wrapped in __value__."""
    return isinstance(value, list)


def to_graph(prompt: dict[str, Any]) -> Graph:
    nodes: dict[str, Node] = {}
    for node_id, body in prompt.items():
        body = body if isinstance(body, dict) else {}
        raw_inputs = body.get("inputs")
        raw_inputs = raw_inputs if isinstance(raw_inputs, dict) else {}
        inputs: dict[str, Any] = {}
        for name, value in raw_inputs.items():
            link = parse_link(value)
            inputs[str(name)] = link if link is not None else unwrap_value(value)
        meta = body.get("_meta")
        title = meta.get("title", "") if isinstance(meta, dict) else ""
        nodes[str(node_id)] = Node(str(node_id), body.get("class_type"), inputs, str(title))
    return Graph(nodes, prompt)

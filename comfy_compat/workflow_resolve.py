"""Where does a UI input really get its value? Follows a link back through everything that exists
only in the editor (reroutes, primitive nodes, bypassed nodes, subgraph boundaries) to either an
output of a node the server runs, a constant, or nothing (muted/deleted source).

A Scope is one graph instance: the root graph, or one subgraph definition as placed by one
instance node. Scope prefixes build the API ids of inner nodes ("5:" + "12" -> "5:12")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comfy_compat.workflow_parse import (
    SUBGRAPH_INPUT_ID,
    SUBGRAPH_OUTPUT_ID,
    ParsedWorkflow,
    SubgraphIO,
    UIGraph,
    UILink,
    UINode,
    malformed,
)
from comfy_compat.workflow_widgets import primitive_value

MUTED, BYPASSED = 2, 4
MAX_SUBGRAPH_DEPTH = 16  # nesting of subgraph instances; guards against huge expansions
MAX_HOPS = 128  # editor-only hops for one input (real files: <20); bounds recursion depth


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Ref:
    node_id: str  # API id of the producing node
    slot: int


Resolved = Const | Ref | None


@dataclass
class Scope:
    graph: UIGraph
    prefix: str  # "" for the root, "5:" inside instance 5, "5:7:" deeper
    instance: UINode | None = None  # the node that placed this subgraph
    parent: Scope | None = None
    chain: tuple[str, ...] = ()  # subgraph ids from the root down to here
    promoted: dict[str, Any] = field(default_factory=dict)  # subgraph input name -> value

    def api_id(self, node_id: str) -> str:
        return self.prefix + node_id


def _types_match(a: str, b: str) -> bool:
    if a == "*" or b == "*":
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def _feeds_a_widget(graph: UIGraph, io: SubgraphIO) -> bool:
    for link_id in io.link_ids:
        link = graph.links.get(link_id)
        target = graph.nodes.get(link.target_id) if link is not None else None
        if (link is not None and target is not None and 0 <= link.target_slot < len(target.inputs)
                and target.inputs[link.target_slot].widget is not None):
            return True
    return False


def _promoted_values(graph: UIGraph, instance: UINode) -> dict[str, Any]:
    """Older editors stored the values of widgets promoted onto an instance in the instance's
    own widgets_values: one per subgraph input that feeds an inner widget, in input order. Used
    only if the count fits exactly; otherwise (and in newer files, which keep them on the inner
    nodes) the inner nodes' own widget values apply."""
    raw = instance.widgets_values
    if not isinstance(raw, list) or not raw:
        return {}
    names = [io.name for io in graph.inputs if _feeds_a_widget(graph, io)]
    return dict(zip(names, raw)) if len(names) == len(raw) else {}


class Resolver:
    """Resolves inputs of one workflow. Holds per-conversion caches only."""

    def __init__(self, workflow: ParsedWorkflow):
        self.workflow = workflow
        self._scopes: dict[str, Scope] = {}

    def root(self) -> Scope:
        return self._scopes.setdefault("", Scope(self.workflow.root, ""))

    def is_subgraph(self, node: UINode) -> bool:
        return node.type in self.workflow.subgraphs

    def child(self, scope: Scope, node: UINode) -> Scope:
        prefix = f"{scope.prefix}{node.id}:"
        if prefix in self._scopes:
            return self._scopes[prefix]
        if node.type in scope.chain:
            raise malformed(f"subgraph {node.type} contains itself",
                            f"node {scope.api_id(node.id)}")
        if len(scope.chain) >= MAX_SUBGRAPH_DEPTH:
            raise malformed(f"subgraphs nested more than {MAX_SUBGRAPH_DEPTH} deep",
                            f"node {scope.api_id(node.id)}")
        graph = self.workflow.subgraphs[node.type]
        child = Scope(graph, prefix, node, scope, (*scope.chain, node.type),
                      _promoted_values(graph, node))
        self._scopes[prefix] = child
        return child

    def resolve_input(self, scope: Scope, node: UINode, index: int,
                      seen: set[tuple[str, str, int]] | None = None) -> Resolved:
        seen = set() if seen is None else seen
        link_id = node.inputs[index].link
        link = scope.graph.links.get(link_id) if link_id is not None else None
        if link is None:  # unconnected, or a stale id left by the editor
            return None
        return self._origin(scope, link, seen)

    def _origin(self, scope: Scope, link: UILink, seen: set[tuple[str, str, int]]) -> Resolved:
        key = (scope.prefix, link.origin_id, link.origin_slot)
        if key in seen:
            raise malformed("links form a cycle through editor-only nodes (reroute/bypass/"
                            "subgraph)", f"node {scope.api_id(link.origin_id)}")
        if len(seen) >= MAX_HOPS:
            raise malformed("link chain too long", f"node {scope.api_id(link.origin_id)}")
        seen.add(key)
        if link.origin_id == SUBGRAPH_INPUT_ID:
            return self._subgraph_input(scope, link, seen)
        node = scope.graph.nodes.get(link.origin_id)
        if node is None or node.mode == MUTED:
            return None
        if node.type == "Reroute":
            return self.resolve_input(scope, node, 0, seen) if node.inputs else None
        if node.type == "PrimitiveNode":
            found, value = primitive_value(node.widgets_values)
            return Const(value) if found else None
        if node.mode == BYPASSED:
            index = self._passthrough(node, link)
            return None if index is None else self.resolve_input(scope, node, index, seen)
        if self.is_subgraph(node):
            return self._subgraph_output(self.child(scope, node), link.origin_slot, seen)
        if node.type in VIRTUAL_TYPES:
            return None
        return Ref(scope.api_id(node.id), link.origin_slot)

    def _passthrough(self, node: UINode, link: UILink) -> int | None:
        """A bypassed node hands each output the input of the same type: the input at the same
        index if it matches (so ControlNetApplyAdvanced's negative stays negative), else the first
        linked input of that type."""
        slot = link.origin_slot
        out_type = node.outputs[slot].type if 0 <= slot < len(node.outputs) else link.type
        order = list(range(len(node.inputs)))
        if 0 <= slot < len(node.inputs):
            order.remove(slot)
            order.insert(0, slot)
        for i in order:
            inp = node.inputs[i]
            if inp.link is not None and _types_match(inp.type, out_type):
                return i
        return None

    def _subgraph_input(self, scope: Scope, link: UILink,
                        seen: set[tuple[str, str, int]]) -> Resolved:
        instance, parent = scope.instance, scope.parent
        if instance is None or parent is None:
            return None  # a subgraph-input link in the root graph: nothing feeds it
        index = next((i for i, io in enumerate(scope.graph.inputs) if link.id in io.link_ids),
                     link.origin_slot)
        if not 0 <= index < len(scope.graph.inputs):
            return None
        name = scope.graph.inputs[index].name
        # Instance slots are matched by name: newer editors list only some of the subgraph's
        # inputs on the instance (promoted widgets live elsewhere).
        slot = next((i for i, inp in enumerate(instance.inputs) if inp.name == name), None)
        if slot is not None:
            outer = self.resolve_input(parent, instance, slot, seen)
            if outer is not None:
                return outer
        if name in scope.promoted:
            return Const(scope.promoted[name])
        return None

    def _subgraph_output(self, scope: Scope, slot: int,
                         seen: set[tuple[str, str, int]]) -> Resolved:
        if not 0 <= slot < len(scope.graph.outputs):
            return None
        links = [scope.graph.links[i] for i in scope.graph.outputs[slot].link_ids
                 if i in scope.graph.links]
        if not links:  # older files: find the link into the output pseudo-node
            links = [ln for ln in scope.graph.links.values()
                     if ln.target_id == SUBGRAPH_OUTPUT_ID and ln.target_slot == slot]
        return self._origin(scope, links[0], seen) if links else None


# Editor-only node types: never sent to the server (Reroute/PrimitiveNode are resolved above).
VIRTUAL_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})

"""UI workflow JSON (what the editor saves) -> API-format prompt (what the server runs).

Every node the server would run becomes {"inputs", "class_type", "_meta": {"title"}}; editor-only
things (notes, reroutes, primitive nodes, muted and bypassed nodes, subgraph boundaries, UI-only
widget slots) are resolved away. Pipeline: workflow_parse (shapes) -> workflow_resolve (where
each input comes from) -> workflow_widgets (widget values by name). Never imports torch: the
registry is passed in."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from comfy_compat.workflow_parse import UINode, malformed, parse_workflow
from comfy_compat.workflow_resolve import (
    BYPASSED,
    MUTED,
    VIRTUAL_TYPES,
    Const,
    Ref,
    Resolver,
    Scope,
)
from comfy_compat.workflow_widgets import api_value, widget_values
from lego_backend.errors import GraphValidationError, ValidationReason

if TYPE_CHECKING:
    from node_library.registry import NodeRegistry
    from node_library.spec import NodeSpec

MAX_NODES = 20_000  # flattened nodes; subgraphs placed inside subgraphs multiply


def unsupported_nodes_error(missing: set[str]) -> GraphValidationError:
    names = sorted(missing)
    return GraphValidationError(ValidationReason(
        "unsupported_nodes", "Workflow uses node types this server does not have",
        ", ".join(names), {"missing_node_types": names}), {})


def _looks_like_uuid(text: str) -> bool:
    parts = text.split("-")
    return ([len(p) for p in parts] == [8, 4, 4, 4, 12]
            and all(c in "0123456789abcdefABCDEF" for p in parts for c in p))


class _Converter:
    def __init__(self, workflow: Any, registry: NodeRegistry):
        self.resolver = Resolver(parse_workflow(workflow))
        self.registry = registry
        self.prompt: dict[str, dict[str, Any]] = {}
        self.missing: set[str] = set()

    def run(self) -> dict[str, dict[str, Any]]:
        self._walk(self.resolver.root())
        if self.missing:
            raise unsupported_nodes_error(self.missing)
        for body in self.prompt.values():  # a link whose source was not emitted is dropped
            inputs = body["inputs"]
            for name in [k for k, v in inputs.items()
                         if isinstance(v, list) and v[0] not in self.prompt]:
                del inputs[name]
        return self.prompt

    def _walk(self, scope: Scope) -> None:
        for node in scope.graph.nodes.values():
            if node.mode in (MUTED, BYPASSED) or node.type in VIRTUAL_TYPES:
                continue
            if self.resolver.is_subgraph(node):
                self._walk(self.resolver.child(scope, node))
                continue
            spec = self.registry.get(node.type)
            if spec is None:
                if _looks_like_uuid(node.type):
                    raise malformed(f"uses subgraph {node.type}, which definitions.subgraphs "
                                    "does not define", f"node {scope.api_id(node.id)}")
                self.missing.add(node.type)
                continue
            if len(self.prompt) >= MAX_NODES:
                raise malformed(f"more than {MAX_NODES} nodes once subgraphs are expanded")
            self.prompt[scope.api_id(node.id)] = self._emit(scope, node, spec)

    def _emit(self, scope: Scope, node: UINode, spec: NodeSpec) -> dict[str, Any]:
        values = widget_values(spec, node.widgets_values)
        inputs = {name: api_value(value) for name, value in values.items()}
        for index, slot in enumerate(node.inputs):
            if slot.link is None:
                continue
            source = self.resolver.resolve_input(scope, node, index)
            if isinstance(source, Ref):
                inputs[slot.api_name] = [source.node_id, source.slot]
            elif isinstance(source, Const):
                inputs[slot.api_name] = api_value(source.value)
            # else: nothing feeds it (muted/deleted source); a widget keeps its own value
        return {"inputs": inputs, "class_type": node.type,
                "_meta": {"title": node.title if node.title is not None else spec.display_name}}


def workflow_to_prompt(workflow: dict[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """Convert a UI-format workflow. Raises GraphValidationError: "invalid_workflow" for a
    malformed file, "unsupported_nodes" (listing every missing type) if the registry lacks any
    node type the workflow would run."""
    return _Converter(workflow, registry).run()

"""Graph -> ExecutionPlan. Validates everything before anything runs and collects EVERY problem
(ComfyUI's validate-then-execute), so a user sees all mistakes of a graph at once."""
from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from lego_backend.errors import GraphValidationError, NodeValidationErrors, ValidationReason
from lego_backend.graph.graph import Graph, Link, looks_like_link
from lego_backend.graph.plan import ExecutionPlan, Step
from lego_backend.graph.validate_input import check_constant, input_config, types_compatible
from node_library.registry import NodeRegistry

MAX_NODES = 5000  # a larger graph is refused before any per-node work


@dataclass
class CompileOptions:
    list_choices: Callable[[str], list[str]] | None = None  # dynamic combo options
    check_context: Any = None  # passed to NodeSpec.validate (e.g. paths of the input dir)
    partial_targets: list[str] | None = None  # only these output nodes
    max_nodes: int = MAX_NODES


def _top(type_: str, message: str, details: str = "") -> ValidationReason:
    return ValidationReason(type_, message, details, {})


@dataclass
class _State:
    graph: Graph
    registry: NodeRegistry
    options: CompileOptions
    valid: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, list[ValidationReason]] = field(default_factory=dict)
    constants: dict[str, dict[str, Any]] = field(default_factory=dict)
    visiting: list[str] = field(default_factory=list)


def compile_graph(graph: Graph, registry: NodeRegistry,
                  options: CompileOptions | None = None) -> ExecutionPlan:
    options = options or CompileOptions()
    if len(graph.nodes) > options.max_nodes:
        raise GraphValidationError(_top(
            "prompt_too_large", "Prompt has too many nodes",
            f"{len(graph.nodes)} nodes, the limit is {options.max_nodes}"), {})
    for node in graph.nodes.values():
        if not isinstance(node.class_type, str) or not node.class_type:
            raise GraphValidationError(_top(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node.id}'"), {})
        if node.class_type not in registry:
            raise GraphValidationError(_top(
                "invalid_prompt", f"Cannot execute because node {node.class_type} does not exist.",
                f"Node ID '#{node.id}'"), {})

    outputs = [n.id for n in graph.nodes.values() if registry.get(n.class_type).output_node]
    if options.partial_targets is not None:
        wanted = {str(t) for t in options.partial_targets}
        outputs = [o for o in outputs if o in wanted]
    if not outputs:
        raise GraphValidationError(_top("prompt_no_outputs", "Prompt has no outputs"), {})

    state = _State(graph, registry, options)
    good = [o for o in outputs if _validate(state, o)]
    node_errors = _node_errors(state, outputs)
    if not good:
        details = "\n".join(f"{r.message}: {r.details}" for rs in state.reasons.values()
                            for r in rs)
        raise GraphValidationError(_top("prompt_outputs_failed_validation",
                                        "Prompt outputs failed validation", details), node_errors)
    return _plan(state, good, node_errors)


def _validate(state: _State, root: str) -> bool:
    """Validate a node and everything upstream of it; memoised. A node is invalid if it has
    reasons of its own or an upstream node is invalid. Depth-first on an explicit stack of
    `_validate_node` frames: a chain of thousands of linked nodes must not hit Python's
    recursion limit."""
    stack = [_validate_node(state, root)]
    result: bool | None = None
    while stack:
        try:
            upstream = stack[-1].send(result)
        except StopIteration as done:
            stack.pop()
            result = done.value
            continue
        stack.append(_validate_node(state, upstream))
        result = None
    return bool(result)


def _validate_node(state: _State, node_id: str) -> Generator[str, bool | None, bool]:
    """One node's validation; yields the id of each upstream node to validate first and is
    sent back whether it is valid."""
    if node_id in state.valid:
        return state.valid[node_id]
    if node_id in state.visiting:
        cycle = state.visiting[state.visiting.index(node_id):]
        for member in cycle:
            state.reasons.setdefault(member, []).append(ValidationReason(
                "dependency_cycle", "Dependency cycle detected",
                " -> ".join([*cycle, node_id]), {"cycle": [*cycle, node_id]}))
            state.valid[member] = False
        return False
    state.visiting.append(node_id)
    node = state.graph.nodes[node_id]
    spec = state.registry.get(node.class_type)
    reasons: list[ValidationReason] = []
    upstream_ok = True
    constants: dict[str, Any] = {}
    for inp in spec.inputs:
        if inp.section == "hidden":
            continue
        name = inp.name
        if name not in node.inputs:
            if inp.section == "required":
                reasons.append(ValidationReason("required_input_missing",
                                                "Required input is missing", name,
                                                {"input_name": name}))
            continue
        value = node.inputs[name]
        if isinstance(value, Link):
            problem = _check_link(state, inp, value)
            if problem is not None:
                reasons.append(problem)
            elif not (yield value.node_id):
                upstream_ok = False
            continue
        if looks_like_link(value):
            reasons.append(ValidationReason(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                {"input_name": name, "input_config": input_config(inp), "received_value": value}))
            continue
        if not inp.is_widget:  # a socket input given a constant
            reasons.append(ValidationReason(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                {"input_name": name, "input_config": input_config(inp), "received_value": value}))
            continue
        choices = (state.registry.choices(inp, state.options.list_choices)
                   if inp.is_combo else None)
        coerced, problem = check_constant(inp, value, choices, name in spec.validate_takes)
        constants[name] = coerced
        if problem is not None:
            reasons.append(problem)
    if not reasons and spec.validate is not None:
        problem = spec.validate(state.options.check_context, **constants)
        if problem:
            input_name, message = problem
            reasons.append(ValidationReason("custom_validation_failed",
                                            "Custom validation failed for node",
                                            f"{input_name} - {message}",
                                            {"input_name": input_name}))
    state.visiting.pop()
    if reasons:
        state.reasons.setdefault(node_id, []).extend(reasons)
    ok = not reasons and upstream_ok and state.valid.get(node_id, True)
    state.valid[node_id] = ok
    state.constants[node_id] = constants
    return ok


def _check_link(state: _State, inp: Any, link: Link) -> ValidationReason | None:
    name = inp.name
    source = state.graph.nodes.get(link.node_id)
    if source is None:
        return ValidationReason(
            "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            f"{name}: node '{link.node_id}' does not exist",
            {"input_name": name, "input_config": input_config(inp),
             "received_value": [link.node_id, link.slot]})
    src_spec = state.registry.get(source.class_type)
    if not 0 <= link.slot < len(src_spec.outputs):
        return ValidationReason(
            "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            f"{name}: node '{link.node_id}' has no output {link.slot}",
            {"input_name": name, "input_config": input_config(inp),
             "received_value": [link.node_id, link.slot]})
    received = src_spec.outputs[link.slot].type
    if not types_compatible(received, inp.type):
        return ValidationReason(
            "return_type_mismatch", "Return type mismatch between linked nodes",
            f"{name}, received_type({received}) mismatch input_type({inp.type})",
            {"input_name": name, "input_config": input_config(inp),
             "received_type": received, "linked_node": [link.node_id, link.slot]})
    return None


def _upstream_closure(state: _State, roots: list[str]) -> list[str]:
    """Nodes the roots need, in dependency order (post-order DFS, deterministic)."""
    order: list[str] = []
    seen: set[str] = set()

    def upstream(nid: str) -> Iterator[str]:
        return iter([v.node_id for v in state.graph.nodes[nid].inputs.values()
                     if isinstance(v, Link) and v.node_id in state.graph.nodes])

    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, upstream(root))]  # explicit stack: chains may be thousands deep
        while stack:
            nid, pending = stack[-1]
            for child in pending:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, upstream(child)))
                    break
            else:
                stack.pop()
                order.append(nid)
    return order


def _node_errors(state: _State, outputs: list[str]) -> dict[str, NodeValidationErrors]:
    errors: dict[str, NodeValidationErrors] = {}
    for node_id, reasons in state.reasons.items():
        node = state.graph.nodes[node_id]
        errors[node_id] = NodeValidationErrors(str(node.class_type), list(reasons), [])
    for out in outputs:
        for nid in _upstream_closure(state, [out]):
            if nid in errors:
                errors[nid].dependent_outputs.append(out)
    return errors


def _plan(state: _State, outputs: list[str],
          node_errors: dict[str, NodeValidationErrors]) -> ExecutionPlan:
    prompt = copy.deepcopy(state.graph.raw)
    steps: dict[str, Step] = {}
    for nid in _upstream_closure(state, outputs):
        node = state.graph.nodes[nid]
        spec = state.registry.get(node.class_type)
        constants = state.constants.get(nid, {})
        for name, value in constants.items():  # coerced values written back, as ComfyUI does
            prompt[nid]["inputs"][name] = value
        links = {k: v for k, v in node.inputs.items() if isinstance(v, Link)}
        steps[nid] = Step(nid, node.class_type, spec, constants, links,
                          "service" if spec.services else "local", node.title)
    return ExecutionPlan(prompt, steps, outputs,
                         {k: v for k, v in node_errors.items()})

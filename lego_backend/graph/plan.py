"""A validated prompt: the steps that must run, in dependency order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lego_backend.errors import NodeValidationErrors
from lego_backend.graph.graph import Link
from node_library.spec import NodeSpec

StepKind = Literal["local", "service"]


@dataclass(frozen=True)
class Step:
    node_id: str
    class_type: str
    spec: NodeSpec
    constants: dict[str, Any]  # widget values, coerced to their declared types
    links: dict[str, Link]  # linked inputs
    kind: StepKind  # "service" steps call model services; "local" ones are cheap CPU ops
    title: str = ""

    @property
    def upstream(self) -> list[str]:
        return [link.node_id for link in self.links.values()]


@dataclass
class ExecutionPlan:
    prompt: dict[str, Any]  # the API prompt with coerced widget values (stored in PNGs/history)
    steps: dict[str, Step]  # node_id -> step, in a valid execution order
    outputs: list[str]  # output nodes that will run
    node_errors: dict[str, NodeValidationErrors] = field(default_factory=dict)  # dropped outputs

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {nid: [] for nid in self.steps}
        for step in self.steps.values():
            for up in step.upstream:
                out[up].append(step.node_id)
        return out

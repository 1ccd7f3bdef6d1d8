"""Typed errors of the backend. Translated to HTTP/ComfyUI shapes only at the edge
(comfy_compat/errors.py, the CLI). Each error carries its data and says if a retry may help."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LegoError(Exception):
    """Root of every error the backend raises on purpose."""

    recoverable: bool = False


@dataclass
class ValidationReason:
    """One problem found while validating a graph, in ComfyUI's vocabulary."""

    type: str  # e.g. "required_input_missing", "value_not_in_list"
    message: str  # short human message ("Required input is missing")
    details: str  # specifics (input name, offending value)
    extra_info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "details": self.details,
            "extra_info": self.extra_info,
        }


@dataclass
class NodeValidationErrors:
    """All problems of one node; `dependent_outputs` are the output nodes it blocks."""

    class_type: str
    errors: list[ValidationReason] = field(default_factory=list)
    dependent_outputs: list[str] = field(default_factory=list)


class GraphValidationError(LegoError):
    """The prompt cannot run. `error` is the top-level reason, `node_errors` maps node id to
    that node's own problems (ComfyUI omits nodes invalid only because of an upstream failure)."""

    def __init__(self, error: ValidationReason, node_errors: dict[str, NodeValidationErrors]):
        super().__init__(error.message)
        self.error = error
        self.node_errors = node_errors

    def describe(self) -> list[str]:
        """One line per problem, for terminals (`lego run`)."""
        lines = [f"{self.error.message}" + (f": {self.error.details}" if self.error.details else "")]
        for node_id, ne in self.node_errors.items():
            for r in ne.errors:
                inp = r.extra_info.get("input_name", "")
                where = f"node {node_id} ({ne.class_type})" + (f" input '{inp}'" if inp else "")
                lines.append(f"  {where}: {r.message}" + (f": {r.details}" if r.details else ""))
        return lines


class NodeExecutionError(LegoError):
    """A node raised while running. Carries what ComfyUI's execution_error message needs."""

    def __init__(self, node_id: str, class_type: str, message: str, exception_type: str,
                 traceback: list[str], current_inputs: dict[str, Any] | None = None,
                 executed: list[str] | None = None):
        super().__init__(message)
        self.node_id = node_id
        self.class_type = class_type
        self.message = message
        self.exception_type = exception_type
        self.traceback = traceback
        self.current_inputs = current_inputs or {}
        self.executed = executed or []


class PromptCancelled(LegoError):
    """The prompt was interrupted (by /interrupt, a queue delete or a shutdown)."""

    def __init__(self, node_id: str | None = None, class_type: str | None = None):
        super().__init__("Prompt interrupted")
        self.node_id = node_id
        self.class_type = class_type


class BackPressureError(LegoError):
    """Admission refused: queue full or the SLO cannot be met. Retry after `retry_after_s`."""

    recoverable = True

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(LegoError):
    """A model service could not be created or has no live replica."""

    recoverable = True


class ReplicaDeadError(LegoError):
    """A replica died while holding work; the work may be re-run elsewhere."""

    recoverable = True


class ModelLoadError(LegoError):
    """A model file is missing, unsafe (pickle) or not in a format we can load."""


class UnsafePathError(LegoError):
    """A user-supplied path escapes the folder it must stay in."""


class DuplicatePromptError(LegoError):
    """A client asked for a prompt_id that is already known."""

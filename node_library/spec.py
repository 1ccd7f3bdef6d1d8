"""Plain-data description of a node class: ComfyUI's exact class name, typed inputs with their
defaults/ranges, output slots, and the function that runs it. Specs validate nothing themselves:
the compiler (lego_backend/graph/compiler.py) checks a graph against them, and the registry renders
them as /object_info."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# Input types the editor draws as widgets; every other type is a socket.
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})

Section = Literal["required", "optional", "hidden"]


@dataclass(frozen=True)
class InputSpec:
    name: str  # input name as in the API prompt
    type: str  # "INT" | "FLOAT" | "STRING" | "BOOLEAN" | "COMBO" | socket type ("MODEL", ...)
    section: Section = "required"
    default: Any = None  # None = no default advertised
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None
    round: float | None = None  # FLOAT only: rounding precision the editor applies
    choices: tuple[str, ...] = ()  # static COMBO options
    choices_from: str | None = None  # dynamic COMBO: a model folder key or "input_images"
    control_after_generate: bool = False  # seed widgets: editor adds a UI-only control slot
    image_upload: bool = False  # LoadImage: editor adds an upload widget (UI-only slot)
    multiline: bool = False
    dynamic_prompts: bool = False
    hidden_kind: str | None = None  # hidden inputs: "PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID"
    tooltip: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # other options rendered verbatim

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and self.section != "hidden"

    @property
    def is_combo(self) -> bool:
        return self.type == "COMBO"


@dataclass(frozen=True)
class OutputSpec:
    type: str  # socket type, e.g. "LATENT"
    name: str  # name shown on the slot
    tooltip: str = ""
    is_list: bool = False


@dataclass
class NodeOutput:
    """What a node's run function returns: its output values (one per output slot) and an
    optional ui dict (e.g. {"images": [{"filename", "subfolder", "type"}]})."""

    result: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


RunFn = Callable[..., NodeOutput]  # run(ctx, **inputs) -> NodeOutput
FingerprintFn = Callable[..., Any]  # fingerprint(ctx, **constant_inputs) -> value in cache key
# validate(ctx, **constant_inputs) -> None, or (input name, message) for the offending input
CheckFn = Callable[..., "tuple[str, str] | None"]


@dataclass(frozen=True)
class NodeSpec:
    class_type: str  # ComfyUI class name, e.g. "KSampler"
    display_name: str
    category: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    run: RunFn
    description: str = ""
    output_node: bool = False
    python_module: str = "nodes"
    deprecated: bool = False
    experimental: bool = False
    # Called with constant inputs before execution; the value joins the cache signature
    # (LoadImage: file hash, so replacing the file re-runs the node).
    fingerprint: FingerprintFn | None = None
    # Extra validation on constant inputs (file exists, sampler supported, ...): a returned
    # (input, message) becomes custom_validation_failed.
    validate: CheckFn | None = None
    # Names of inputs whose range/combo checks `validate` replaces (ComfyUI's VALIDATE_INPUTS).
    validate_takes: tuple[str, ...] = ()
    # Service kinds this node calls ("text_encoder", "denoiser", "vae", ...): the compiler marks
    # such nodes as ServiceSteps; nodes with none are cheap LocalSteps.
    services: tuple[str, ...] = ()

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    @property
    def widget_inputs(self) -> tuple[InputSpec, ...]:
        """Widget inputs in editor order (required then optional), as UI `widgets_values` lists them
        (without the UI-only control/upload slots)."""
        order = {"required": 0, "optional": 1}
        return tuple(sorted((i for i in self.inputs if i.is_widget), key=lambda i: order[i.section]))

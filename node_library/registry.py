"""class_type -> NodeSpec, and the rendering of specs as ComfyUI's /object_info schema."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from node_library.spec import InputSpec, NodeSpec

# Lists the files behind a dynamic combo ("checkpoints", "loras", "input_images", ...).
ChoicesFn = Callable[[str], list[str]]


class NodeRegistry:
    def __init__(self, specs: Iterable[NodeSpec] = ()):
        self._specs: dict[str, NodeSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: NodeSpec) -> None:
        if spec.class_type in self._specs:
            raise ValueError(f"node {spec.class_type} registered twice")
        self._specs[spec.class_type] = spec

    def get(self, class_type: str) -> NodeSpec | None:
        return self._specs.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._specs

    def names(self) -> list[str]:
        return list(self._specs)

    def choices(self, spec: InputSpec, list_choices: ChoicesFn | None) -> list[str]:
        """The current options of a COMBO input (static, or listed from the model store)."""
        if spec.choices_from is not None:
            return list(list_choices(spec.choices_from)) if list_choices else []
        return list(spec.choices)

    def object_info(self, list_choices: ChoicesFn | None = None) -> dict[str, Any]:
        return {name: self.node_info(spec, list_choices) for name, spec in self._specs.items()}

    def node_info(self, spec: NodeSpec, list_choices: ChoicesFn | None = None) -> dict[str, Any]:
        sections: dict[str, dict[str, Any]] = {}
        order: dict[str, list[str]] = {}
        for inp in spec.inputs:
            sections.setdefault(inp.section, {})[inp.name] = self._render_input(inp, list_choices)
            order.setdefault(inp.section, []).append(inp.name)
        info: dict[str, Any] = {
            "input": {k: sections[k] for k in ("required", "optional", "hidden") if k in sections},
            "input_order": {k: order[k] for k in ("required", "optional", "hidden") if k in order},
            "is_input_list": False,
            "output": [o.type for o in spec.outputs],
            "output_is_list": [o.is_list for o in spec.outputs],
            "output_name": [o.name for o in spec.outputs],
            "output_tooltips": [o.tooltip for o in spec.outputs],
            "name": spec.class_type,
            "display_name": spec.display_name,
            "description": spec.description,
            "python_module": spec.python_module,
            "category": spec.category,
            "output_node": spec.output_node,
            "has_intermediate_output": False,
            "search_aliases": [],
        }
        if "required" not in info["input"]:
            info["input"]["required"] = {}
        if spec.deprecated:
            info["deprecated"] = True
        if spec.experimental:
            info["experimental"] = True
        return info

    def _render_input(self, inp: InputSpec, list_choices: ChoicesFn | None) -> Any:
        if inp.section == "hidden":
            return inp.hidden_kind or inp.type
        opts: dict[str, Any] = {}
        if inp.default is not None:
            opts["default"] = inp.default
        for key in ("min", "max", "step", "round"):
            value = getattr(inp, key)
            if value is not None:
                opts[key] = value
        if inp.control_after_generate:
            opts["control_after_generate"] = True
        if inp.multiline:
            opts["multiline"] = True
        if inp.dynamic_prompts:
            opts["dynamicPrompts"] = True
        if inp.image_upload:
            opts["image_upload"] = True
        if inp.tooltip:
            opts["tooltip"] = inp.tooltip
        opts.update(inp.extra)
        if inp.is_combo:
            return [self.choices(inp, list_choices), opts]
        return [inp.type, opts] if opts else [inp.type]

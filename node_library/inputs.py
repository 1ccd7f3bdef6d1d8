"""Short constructors for input/output specs, so node files read like ComfyUI's node tables."""
from __future__ import annotations

from typing import Any

from node_library.spec import InputSpec, OutputSpec, Section

MAX_RESOLUTION = 16384
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def INT(name: str, default: int, lo: int, hi: int, step: int | None = None,
        section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, "INT", section, default=default, min=lo, max=hi, step=step, **kw)


def FLOAT(name: str, default: float, lo: float, hi: float, step: float | None = None,
          round: float | None = None, section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, "FLOAT", section, default=default, min=lo, max=hi, step=step,
                     round=round, **kw)


def STRING(name: str, default: str | None = None, multiline: bool = False,
           dynamic_prompts: bool = False, section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, "STRING", section, default=default, multiline=multiline,
                     dynamic_prompts=dynamic_prompts, **kw)


def BOOLEAN(name: str, default: bool, section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, "BOOLEAN", section, default=default, **kw)


def COMBO(name: str, choices: tuple[str, ...] = (), choices_from: str | None = None,
          section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, "COMBO", section, choices=choices, choices_from=choices_from, **kw)


def SOCKET(name: str, type_: str, section: Section = "required", **kw: Any) -> InputSpec:
    return InputSpec(name, type_, section, **kw)


def HIDDEN(name: str, kind: str) -> InputSpec:
    return InputSpec(name, kind, "hidden", hidden_kind=kind)


def OUT(type_: str, name: str | None = None, tooltip: str = "") -> OutputSpec:
    return OutputSpec(type_, name or type_, tooltip)

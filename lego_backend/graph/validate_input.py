"""Checks of one constant input against its InputSpec, in ComfyUI's error vocabulary."""
from __future__ import annotations

import math
from typing import Any

from lego_backend.errors import ValidationReason
from node_library.spec import InputSpec

COERCE = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def input_config(spec: InputSpec, choices: list[str] | None = None) -> list[Any]:
    """`[type, options]` as ComfyUI reports it in extra_info.input_config."""
    opts = {k: getattr(spec, k) for k in ("default", "min", "max", "step")
            if getattr(spec, k) is not None}
    if spec.is_combo:
        return [choices or [], opts]
    return [spec.type, opts]


def check_constant(spec: InputSpec, value: Any, choices: list[str] | None,
                   skip_range: bool) -> tuple[Any, ValidationReason | None]:
    """Coerce `value` to the input's type and check range / list membership.
    Returns (coerced value, None) or (value, reason)."""
    name = spec.name
    if spec.type in COERCE:
        try:
            if spec.type == "INT" and isinstance(value, str):
                coerced: Any = int(value.strip())
            elif spec.type == "INT" and isinstance(value, float):
                if not math.isfinite(value):
                    raise ValueError("not a finite number")
                coerced = int(value)
            else:
                coerced = COERCE[spec.type](value)
            if spec.type == "FLOAT" and not math.isfinite(coerced):
                raise ValueError("not a finite number")
            if spec.type in ("INT", "FLOAT") and isinstance(value, (dict, list)):
                raise TypeError("not a number")
            if spec.type == "STRING" and not isinstance(value, (str, int, float)):
                raise TypeError("not a string")
        except (TypeError, ValueError, OverflowError) as ex:
            return value, ValidationReason(
                "invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                f"{name}, {value}, {ex}",
                {"input_name": name, "input_config": input_config(spec),
                 "received_value": value, "exception_message": str(ex)})
        if not skip_range and spec.type in ("INT", "FLOAT"):
            if spec.min is not None and coerced < spec.min:
                return coerced, ValidationReason(
                    "value_smaller_than_min", f"Value {coerced} smaller than min of {spec.min}",
                    name, {"input_name": name, "input_config": input_config(spec),
                           "received_value": coerced})
            if spec.max is not None and coerced > spec.max:
                return coerced, ValidationReason(
                    "value_bigger_than_max", f"Value {coerced} bigger than max of {spec.max}",
                    name, {"input_name": name, "input_config": input_config(spec),
                           "received_value": coerced})
        return coerced, None
    if spec.is_combo and not skip_range:
        options = choices or []
        if not isinstance(value, (str, int, float, bool)) or value not in options:
            shown = (f"(list of length {len(options)})" if len(options) > 20
                     else str(options))
            return value, ValidationReason(
                "value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}",
                {"input_name": name,
                 "input_config": None if len(options) > 20 else input_config(spec, options),
                 "received_value": value})
    return value, None


def types_compatible(received: str, expected: str) -> bool:
    """ComfyUI's rule: '*' matches anything; comma-separated unions match any member."""
    if received == "*" or expected == "*":
        return True
    if expected == "COMBO":  # a primitive/combo source feeding a combo widget
        return received in ("COMBO", "STRING") or received.startswith("COMBO")
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return bool(got & want)

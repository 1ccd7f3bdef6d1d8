"""A UI node's `widgets_values` -> {input name: value}, using the registry's widget order.

The editor saves widget values positionally, in the node's widget order (required then optional
widget inputs), with UI-only slots mixed in: a control mode ("randomize", ...) after every
control_after_generate input, and an upload button slot after an image_upload input. Those slots
never reach the API, so they are skipped here. Newer editors may save an object keyed by name."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node_library.spec import InputSpec, NodeSpec

CONTROL_MODES = frozenset({"fixed", "increment", "decrement", "randomize"})


def api_value(value: Any) -> Any:
    """List values are wrapped so the server cannot mistake them for links."""
    return {"__value__": value} if isinstance(value, list) else value


def _fallback(spec: InputSpec) -> tuple[bool, Any]:
    """What the editor shows for a widget the saved file has no value for (a workflow saved
    before the input existed): its default, or a static combo's first option."""
    if spec.default is not None:
        return True, spec.default
    if spec.is_combo and spec.choices:
        return True, spec.choices[0]
    return False, None


def _ui_only_slot(spec: InputSpec, value: Any, surplus: bool) -> bool:
    """Is `value`, right after `spec`'s own value, an editor-only slot?"""
    if spec.control_after_generate:
        # Only a control mode counts (old editors wrote a bool there): very old files were
        # saved before the slot existed and must not lose their next value.
        return isinstance(value, bool) or (isinstance(value, str) and value in CONTROL_MODES)
    # The upload slot is "image"/"upload" or a serialized button object; it only counts when
    # the list really has one value too many for the widgets still to come.
    return spec.image_upload and surplus


def _from_list(widgets: tuple[InputSpec, ...], raw: list[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    pos = 0
    for k, spec in enumerate(widgets):
        if pos >= len(raw):
            break
        values[spec.name] = raw[pos]
        pos += 1
        surplus = len(raw) - pos > len(widgets) - k - 1
        if pos < len(raw) and _ui_only_slot(spec, raw[pos], surplus):
            pos += 1
    return values


def widget_values(spec: NodeSpec, raw: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
    """Values of the node's widget inputs, with defaults for widgets the file lacks."""
    widgets = spec.widget_inputs
    if isinstance(raw, dict):
        values = {w.name: raw[w.name] for w in widgets if w.name in raw}
    elif isinstance(raw, list):
        values = _from_list(widgets, raw)
    else:
        values = {}
    for w in widgets:
        if w.name not in values:
            found, value = _fallback(w)
            if found:
                values[w.name] = value
    return values


def primitive_value(raw: list[Any] | dict[str, Any] | None) -> tuple[bool, Any]:
    """The value a PrimitiveNode feeds to the widget it is linked to (its first widget)."""
    if isinstance(raw, list) and raw:
        return True, raw[0]
    if isinstance(raw, dict):
        if "value" in raw:
            return True, raw["value"]
        for value in raw.values():
            return True, value
    return False, None

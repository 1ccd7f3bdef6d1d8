"""`lego run` and `lego convert`: one workflow, in this process, with a progress bar per
sampling node and the paths of the images written."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from lego_backend.config import BackendConfig
from lego_backend.errors import GraphValidationError, LegoError
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRequest


def _fail(message: str) -> int:
    print(f"lego: {message}", file=sys.stderr)
    return 2


def load_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LegoError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LegoError(f"{path} is not valid JSON: {exc}") from None


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and "nodes" in data and "links" in data


def apply_sets(prompt: dict[str, Any], sets: list[str]) -> None:
    for item in sets:
        target, sep, raw = item.partition("=")
        node_id, dot, name = target.partition(".")
        if not sep or not dot or not name:
            raise LegoError(f"--set {item!r}: expected NODE.INPUT=VALUE")
        if node_id not in prompt or not isinstance(prompt[node_id], dict):
            raise LegoError(f"--set {item!r}: the workflow has no node {node_id}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        prompt[node_id].setdefault("inputs", {})[name] = value


def parse_model_map(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise LegoError(f"--model-map {item!r}: expected OLD=NEW (model file names)")
        mapping[old] = new
    return mapping


def apply_model_map(prompt: dict[str, Any], mapping: dict[str, str], registry: Any) -> int:
    """Rename model files in model-file combos (checkpoints, loras, ...; not input images) so a
    downloaded workflow runs on the files this machine has. Returns how many inputs changed."""
    changed = 0
    for node in prompt.values():
        spec = registry.get(node.get("class_type")) if isinstance(node, dict) else None
        if spec is None:
            continue
        inputs = node.get("inputs", {})
        for name, value in list(inputs.items()):
            combo = spec.input(name)
            is_model = (combo is not None and combo.is_combo
                        and combo.choices_from not in (None, "input_images"))
            if is_model and isinstance(value, str) and value in mapping:
                inputs[name] = mapping[value]
                changed += 1
    return changed


class ProgressPrinter:
    """Prints a bar per sampling node and remembers what was written."""

    def __init__(self, prompt: dict[str, Any], stream: Any = sys.stderr):
        self.prompt = prompt
        self.stream = stream
        self.images: list[dict[str, str]] = []
        self.error: ev.ExecutionError | None = None
        self.interrupted = False
        self.done = threading.Event()

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            width = 30
            filled = int(width * event.value / max(1, event.max))
            cls = self.prompt.get(event.node, {}).get("class_type", "")
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if event.value >= event.max else ""
            self.stream.write(f"\r{event.node} {cls} [{bar}] {event.value}/{event.max}{end}")
            self.stream.flush()
        elif isinstance(event, ev.Executed) and event.output:
            self.images.extend(event.output.get("images", []))
        elif isinstance(event, ev.ExecutionError):
            self.error = event
        elif isinstance(event, ev.ExecutionInterrupted):
            self.interrupted = True


def run_workflow(args: argparse.Namespace, config: BackendConfig) -> int:
    from lego_backend.backend import Backend

    try:
        data = load_json(args.workflow)
        backend = Backend(config)
        prompt = backend.convert_workflow(data) if is_ui_workflow(data) else data
        if not isinstance(prompt, dict):
            raise LegoError(f"{args.workflow}: expected a JSON object of nodes")
        extra: dict[str, Any] = {}
        if is_ui_workflow(data):
            extra["extra_pnginfo"] = {"workflow": data}
        apply_sets(prompt, args.set)
        apply_model_map(prompt, parse_model_map(getattr(args, "model_map", [])),
                        backend.registry)
        for d in (config.output_dir, config.input_dir, config.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        result = backend.submit(PromptRequest(prompt, client_id="cli", extra_data=extra))
    except GraphValidationError as err:
        print("lego: the workflow is not valid:", file=sys.stderr)
        for line in err.describe():
            print(f"  {line}", file=sys.stderr)
        return 2
    except LegoError as err:
        return _fail(str(err))
    printer = ProgressPrinter(prompt)
    backend.add_listener(printer)
    record = backend.run_next()
    if record is None or record.prompt_id != result.prompt_id:
        return _fail("the prompt was not run")
    if printer.error is not None:
        e = printer.error
        return _fail(f"node {e.node_id} ({e.node_type}) failed: {e.exception_message}")
    for item in printer.images:
        root = {"output": config.output_dir, "temp": config.temp_dir}[item["type"]]
        print(root / item["subfolder"] / item["filename"])
    return 0


def convert_command(args: argparse.Namespace) -> int:
    from comfy_compat.workflow_format import workflow_to_prompt
    from node_library import build_registry

    try:
        data = load_json(args.workflow)
        prompt = workflow_to_prompt(data, build_registry())
    except GraphValidationError as err:
        for line in err.describe():
            print(line, file=sys.stderr)
        return 2
    except LegoError as err:
        return _fail(str(err))
    json.dump(prompt, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

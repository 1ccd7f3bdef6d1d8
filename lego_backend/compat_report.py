"""How much of a corpus of ComfyUI workflow templates this server can run, and which missing
node types would unlock the most. Each template is converted (comfy_compat.workflow_format) and
validated by the real compiler; missing model files and input images are not held against a
template, since they depend on the machine, not on the server."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lego_backend.errors import GraphValidationError, ValidationReason

if TYPE_CHECKING:
    from node_library.registry import NodeRegistry

Status = Literal["full", "partial", "unsupported", "invalid"]
TEMPLATE_PACKAGE = "comfyui_workflow_templates_json"  # pip: comfyui-workflow-templates-json
API_PREFIX = "api_"  # name prefix of templates built on paid cloud API nodes


@dataclass(frozen=True)
class TemplateResult:
    name: str  # file stem
    status: Status
    missing: tuple[str, ...] = ()  # node types the registry lacks (status "unsupported")
    problems: tuple[str, ...] = ()  # validation/format problems ("partial", "invalid")
    cloud: bool = False  # built on paid cloud API nodes (index.json: not open source / "API")


@dataclass(frozen=True)
class MissingType:
    class_type: str
    appears_in: int  # templates that use it (among those it blocks)
    sole_blocker: int  # templates for which it is the only missing type


@dataclass
class Report:
    results: list[TemplateResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # JSON files that are not workflows

    def count(self, status: Status, local_only: bool = False) -> int:
        return sum(1 for r in self.results if r.status == status
                   and not (local_only and r.cloud))

    def unlock_path(self, steps: int, local_only: bool = True) -> list[tuple[str, int]]:
        """Greedy order of node types to add, with the templates fully converting after each
        step (cumulative). Each step takes the type that completes the most templates, ties
        broken by how many still-blocked templates use it."""
        blocked = [set(r.missing) for r in self.results if r.status == "unsupported"
                   and not (local_only and r.cloud)]
        path: list[tuple[str, int]] = []
        unlocked = 0
        for _ in range(steps):
            uses: Counter[str] = Counter(t for m in blocked for t in m)
            if not uses:
                break
            completes: Counter[str] = Counter(next(iter(m)) for m in blocked if len(m) == 1)
            best = min(uses, key=lambda t: (-completes[t], -uses[t], t))
            for m in blocked:
                m.discard(best)
            unlocked += sum(1 for m in blocked if not m)
            blocked = [m for m in blocked if m]
            path.append((best, unlocked))
        return path

    def missing_ranking(self, local_only: bool = False) -> list[MissingType]:
        """Ranked by templates unlocked on their own, then by how many templates use it.
        `local_only` leaves out templates built on paid cloud API nodes."""
        appears: Counter[str] = Counter()
        sole: Counter[str] = Counter()
        for r in self.results:
            if local_only and r.cloud:
                continue
            appears.update(r.missing)
            if len(r.missing) == 1:
                sole[r.missing[0]] += 1
        ranked = sorted(appears, key=lambda t: (-sole[t], -appears[t], t))
        return [MissingType(t, appears[t], sole[t]) for t in ranked]


@dataclass(frozen=True)
class _NoFiles:
    """check_context for node validators: folders that do not exist, so file checks fail in a
    way the report recognises (and forgives) instead of touching the user's folders."""

    output_dir: Path = Path("/nonexistent/lego-compat/output")
    input_dir: Path = Path("/nonexistent/lego-compat/input")
    temp_dir: Path = Path("/nonexistent/lego-compat/temp")
    models: Any = None


def _string_constants(prompt: dict[str, Any]) -> list[str]:
    return sorted({v for body in prompt.values() for v in body["inputs"].values()
                   if isinstance(v, str)})


def _is_environmental(reason: ValidationReason, class_type: str, registry: NodeRegistry) -> bool:
    """Problems that only mean "this file is not on this machine": a model/image combo value."""
    spec = registry.get(class_type)
    name = reason.extra_info.get("input_name")
    if spec is None or not isinstance(name, str):
        return False
    inp = spec.input(name)
    return (inp is not None and inp.choices_from is not None
            and reason.type in ("value_not_in_list", "custom_validation_failed"))


def _validation_problems(prompt: dict[str, Any], registry: NodeRegistry) -> list[str]:
    from lego_backend.graph.compiler import CompileOptions, compile_graph
    from lego_backend.graph.graph import to_graph

    values = _string_constants(prompt)
    options = CompileOptions(list_choices=lambda folder: values, check_context=_NoFiles())
    try:
        plan = compile_graph(to_graph(prompt), registry, options)
        node_errors = plan.node_errors
        top: ValidationReason | None = None
    except GraphValidationError as err:
        node_errors, top = err.node_errors, err.error
    problems = [f"{nid} {ne.class_type}: {r.message}" + (f" ({r.details})" if r.details else "")
                for nid, ne in node_errors.items() for r in ne.errors
                if not _is_environmental(r, ne.class_type, registry)]
    if top is not None and not node_errors:  # e.g. no output node at all
        problems.append(f"{top.message}" + (f": {top.details}" if top.details else ""))
    return problems


def check_template(name: str, workflow: Any, registry: NodeRegistry) -> TemplateResult:
    from comfy_compat.workflow_format import workflow_to_prompt

    try:
        prompt = workflow_to_prompt(workflow, registry)
    except GraphValidationError as err:
        if err.error.type == "unsupported_nodes":
            missing = err.error.extra_info.get("missing_node_types", [])
            return TemplateResult(name, "unsupported", tuple(missing))
        return TemplateResult(name, "invalid", problems=(err.error.details or err.error.message,))
    problems = _validation_problems(prompt, registry)
    return TemplateResult(name, "partial" if problems else "full", problems=tuple(problems))


def _is_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def _cloud_names(index: Any) -> set[str]:
    """Templates the package's index.json marks as cloud-API based."""
    names: set[str] = set()
    for category in index if isinstance(index, list) else []:
        entries = category.get("templates") if isinstance(category, dict) else None
        for t in entries if isinstance(entries, list) else []:
            if isinstance(t, dict) and isinstance(t.get("name"), str) and (
                    t.get("openSource") is False or "API" in (t.get("tags") or [])):
                names.add(t["name"])
    return names


def compat_report(template_files: Iterable[str | Path], registry: NodeRegistry) -> Report:
    """Checks every workflow file; an index.json among the files (the template package ships
    one) says which templates are cloud-API based, else the api_ name prefix does."""
    report = Report()
    cloud: set[str] | None = None
    for path in sorted(Path(p) for p in template_files):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            report.results.append(TemplateResult(path.stem, "invalid", problems=(str(exc),)))
            continue
        if not _is_workflow(data):  # index files, schemas, API-format prompts
            if path.name == "index.json":
                cloud = _cloud_names(data)
            report.skipped.append(path.name)
            continue
        report.results.append(check_template(path.stem, data, registry))
    report.results = [replace(r, cloud=r.name in cloud if cloud is not None
                              else r.name.startswith(API_PREFIX)) for r in report.results]
    return report


def default_template_dir() -> Path | None:
    """The `templates/` folder of the installed comfyui-workflow-templates-json package."""
    import importlib.util

    found = importlib.util.find_spec(TEMPLATE_PACKAGE)
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations))) / "templates"
    return folder if folder.is_dir() else None


def _ranking_table(title: str, ranking: list[MissingType], top: int) -> list[str]:
    if not ranking:
        return []
    lines = ["", f"{title} (top {min(top, len(ranking))} of {len(ranking)}):",
             f"  {'node type':<40} {'sole blocker of':>15} {'appears in':>11}"]
    return lines + [f"  {m.class_type:<40} {m.sole_blocker:>15} {m.appears_in:>11}"
                    for m in ranking[:top]]


def format_report(report: Report, top: int = 15, verbose: bool = False) -> str:
    total = len(report.results)
    local = sum(1 for r in report.results if not r.cloud)
    lines = [(f"templates: {total} ({local} without cloud API nodes); skipped "
              f"{len(report.skipped)} non-workflow JSON files"),
             f"  {'':<28} {'all':>5} {'local':>6}"]
    for status, label in (("full", "fully supported"), ("partial", "converts, fails validation"),
                          ("unsupported", "unsupported node types"), ("invalid", "malformed")):
        lines.append(f"  {label:<28} {report.count(status):>5} "  # type: ignore[arg-type]
                     f"{report.count(status, local_only=True):>6}")  # type: ignore[arg-type]
    lines += _ranking_table("most wanted node types, all templates",
                            report.missing_ranking(), top)
    lines += _ranking_table("most wanted node types, local templates (no cloud API nodes)",
                            report.missing_ranking(local_only=True), top)
    path = report.unlock_path(top)
    if path:
        lines += ["", ("greedy unlock order, local templates "
                       "(add type -> blocked templates that then convert):")]
        lines += [f"  {i + 1:>2}. {t:<40} {n:>4}" for i, (t, n) in enumerate(path)]
    for status, label in (("full", "fully supported"), ("partial", "partially supported")):
        chosen = [r for r in report.results if r.status == status]
        if chosen:
            lines += ["", f"{label}:"]
            for r in chosen:
                lines.append(f"  {r.name}")
                lines += [f"      {p}" for p in r.problems[: None if verbose else 3]]
    if verbose:
        lines += ["", "not supported:"]
        lines += [f"  {r.status:<11} {r.name}: {', '.join(r.missing or r.problems)}"
                  for r in report.results if r.status in ("unsupported", "invalid")]
    return "\n".join(lines)


def main_compat_report(argv: list[str] | None = None) -> int:
    """`lego compat report [--templates DIR] [--top N] [--json] [--verbose]`."""
    parser = argparse.ArgumentParser(prog="lego compat report", description=__doc__)
    parser.add_argument("--templates", help="folder of workflow JSON files (default: the "
                                            "installed comfyui-workflow-templates-json package)")
    parser.add_argument("--top", type=int, default=15, help="missing node types to list")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verbose", action="store_true", help="list every template")
    args = parser.parse_args(argv)
    folder = Path(args.templates) if args.templates else default_template_dir()
    if folder is None or not folder.is_dir():
        print("lego: no templates folder; pass --templates DIR or "
              "`pip install comfyui-workflow-templates-json`", file=sys.stderr)
        return 2
    from node_library import build_registry

    report = compat_report(sorted(folder.glob("*.json")), build_registry())
    if args.json:
        json.dump({"results": [r.__dict__ for r in report.results], "skipped": report.skipped,
                   "missing": [m.__dict__ for m in report.missing_ranking()]}, sys.stdout,
                  indent=1)
        sys.stdout.write("\n")
    else:
        print(format_report(report, args.top, args.verbose))
    return 0

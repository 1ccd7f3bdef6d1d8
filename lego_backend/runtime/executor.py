"""Runs one validated prompt: cache lookups, then each needed step in dependency order, emitting
ComfyUI's event sequence. Node errors become typed events; nothing here knows HTTP.

Lost inputs: on a cluster a node's results may live in another machine's memory. When that
machine dies, the node that needs them fails with InputLostError; the graph nodes that produced
the lost values are then re-run (their cached outputs replaced) and the failed node is run again
from its start, a bounded number of times per prompt. The re-runs send no `executing` or
`executed` messages (their ui, if any, was already reported), so the client still sees one
`execution_success`; progress of the retried node restarts at step 1."""
from __future__ import annotations

import logging
import math
import traceback
import uuid
from typing import Any, NoReturn

from lego_backend.dataplane.store import iter_handles
from lego_backend.dataplane.transport import InputLostError
from lego_backend.errors import NodeExecutionError, PromptCancelled
from lego_backend.graph.cache_key import signatures
from lego_backend.graph.plan import ExecutionPlan, Step
from lego_backend.runtime import events as ev
from lego_backend.runtime.context import RunContext
from lego_backend.runtime.output_cache import CachedOutput, OutputCache
from lego_backend.runtime.records import PromptRecord

log = logging.getLogger("lego.executor")
MAX_RECOVERIES = 3  # lost-input recoveries per prompt (one dead machine needs one)


def _fingerprint(ctx: RunContext, step: Step) -> Any:
    if step.spec.fingerprint is None:
        return None
    try:
        value = step.spec.fingerprint(ctx, **step.constants)
    except Exception:  # noqa: BLE001 -- a failing fingerprint means "always re-run", as in ComfyUI
        value = float("nan")
    if isinstance(value, float) and math.isnan(value):
        return uuid.uuid4().hex
    return value


def _hold(ctx: RunContext, held: list[Any], result: tuple[Any, ...]) -> tuple[Any, ...]:
    """Keep a result's tensors alive until this prompt ends, whatever the cache does."""
    for handle in set(iter_handles(result)):
        ctx.store.retain(handle)
        held.append(handle)
    return result


def execute(record: PromptRecord, plan: ExecutionPlan, ctx: RunContext,
            cache: OutputCache) -> None:
    """Run the prompt; raises nothing: the outcome is in the record and the events."""
    pid, cid = record.prompt_id, record.client_id
    held: list[Any] = []  # handles this run keeps alive while other prompts may trim the cache
    values: dict[str, tuple[Any, ...]] = {}

    def status(event: ev.Event) -> None:
        record.messages.append(event)
        ctx.emit(event)

    def from_cache(nid: str) -> bool:
        """Take a node's outputs from the cache (holding its tensors); False on a miss."""
        hit = cache.get(sigs[nid])
        if hit is None:
            return False
        values[nid] = _hold(ctx, held, hit.result)
        _report_ui(record, ctx, nid, hit.ui)
        return True

    status(ev.ExecutionStart(pid, cid))
    sigs = signatures(plan, lambda step: _fingerprint(ctx, step))
    cached = [nid for nid in plan.steps if sigs[nid] in cache]
    status(ev.ExecutionCached(pid, cid, nodes=tuple(cached)))
    try:
        # Walk up from the outputs; a cache hit ends the walk along that path.
        need: set[str] = set()
        stack = list(plan.outputs)
        while stack:
            nid = stack.pop()
            if nid in need or nid in values or from_cache(nid):
                continue
            need.add(nid)
            stack.extend(plan.steps[nid].upstream)
        _run_steps(record, plan, ctx, cache, sigs, values, [n for n in plan.steps if n in need],
                   cached, held, status)
    finally:
        for handle in held:
            ctx.store.release(handle)


def _run_steps(record: PromptRecord, plan: ExecutionPlan, ctx: RunContext, cache: OutputCache,
               sigs: dict[str, str], values: dict[str, tuple[Any, ...]], order: list[str],
               cached: list[str], held: list[Any], status: Any) -> None:
    pid, cid, emit = record.prompt_id, record.client_id, ctx.emit
    executed: list[str] = []
    step: Step | None = None
    budget = [MAX_RECOVERIES]
    try:
        for nid in order:
            step = plan.steps[nid]
            ctx.check_interrupt()
            twin = cache.get(sigs[nid])
            if twin is not None:  # an identical sub-graph earlier in this prompt already ran
                values[nid] = _hold(ctx, held, twin.result)
                _report_ui(record, ctx, nid, twin.ui)
                continue
            ctx.node_id = nid
            ctx.set_state(nid, "running", 0, 1)
            emit(ev.Executing(pid, cid, node=nid, display_node=nid))
            out = _run_recovering(nid, plan, ctx, cache, sigs, values, held, executed, budget)
            result = tuple(out.result)
            cache.put(sigs[nid], CachedOutput(result, out.ui))
            values[nid] = _hold(ctx, held, result)
            ctx.release_scratch()
            executed.append(nid)
            ctx.set_state(nid, "finished", 1, 1)
            _report_ui(record, ctx, nid, out.ui)
    except PromptCancelled:
        ctx.release_scratch()
        record.status = "interrupted"
        status(ev.ExecutionInterrupted(pid, cid, node_id=step.node_id if step else None,
                                       node_type=step.class_type if step else None,
                                       executed=tuple(cached + executed)))
        return
    except NodeExecutionError as err:
        ctx.release_scratch()
        record.status = "error"
        if step is not None:
            ctx.set_state(step.node_id, "error", 0, 1)
        status(ev.ExecutionError(pid, cid, node_id=err.node_id, node_type=err.class_type,
                                 executed=tuple(cached + executed),
                                 exception_message=err.message,
                                 exception_type=err.exception_type,
                                 traceback=tuple(err.traceback),
                                 current_inputs=err.current_inputs))
        return
    record.status = "success"
    status(ev.ExecutionSuccess(pid, cid))


def _report_ui(record: PromptRecord, ctx: RunContext, node_id: str,
               ui: dict[str, Any] | None) -> None:
    """A node's ui dict goes into the history and out as `executed` (cached ones too)."""
    if ui is None:
        return
    record.outputs[node_id] = ui
    ctx.emit(ev.Executed(record.prompt_id, record.client_id, node=node_id, display_node=node_id,
                         output=ui))


def _describe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return type(value).__name__


def _run(step: Step, ctx: RunContext, inputs: dict[str, Any], executed: list[str],
         lost_ok: bool = False) -> Any:
    """Run one node; with `lost_ok` a lost input is raised as is (the caller recovers)."""
    try:
        return step.spec.run(ctx, **inputs)
    except PromptCancelled:
        raise
    except Exception as exc:  # any node failure becomes execution_error, never a crash
        lost = _lost(exc)
        if lost_ok and lost is not None:
            raise lost from exc
        _run_failed(step, exc, inputs, executed)


def _lost(exc: BaseException | None) -> InputLostError | None:
    """The InputLostError behind `exc`, if a node wrapped it."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, InputLostError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _inputs(step: Step, values: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    inputs = dict(step.constants)
    for name, link in step.links.items():
        inputs[name] = values[link.node_id][link.slot]
    return inputs


def _upstream(plan: ExecutionPlan, nid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(plan.steps[nid].upstream)
    while stack:
        up = stack.pop()
        if up not in seen:
            seen.add(up)
            stack.extend(plan.steps[up].upstream)
    return seen


def _run_recovering(nid: str, plan: ExecutionPlan, ctx: RunContext, cache: OutputCache,
                    sigs: dict[str, str], values: dict[str, tuple[Any, ...]], held: list[Any],
                    executed: list[str], budget: list[int]) -> Any:
    """Run node `nid`; when an input's bytes were lost (their machine died), re-run the
    upstream nodes whose outputs held them, in graph order, then run `nid` again."""
    step = plan.steps[nid]
    while True:
        inputs = _inputs(step, values)
        try:
            return _run(step, ctx, inputs, executed, lost_ok=budget[0] > 0)
        except InputLostError as lost:
            cause = lost.__cause__ or lost
            ctx.release_scratch()
            ups = _upstream(plan, nid)
            stale = [u for u in plan.steps if u in ups and u in values and any(
                lost.matches(ctx.store.source(h)) for h in iter_handles(values[u]))]
            if not stale:  # nothing we ran holds those bytes: cannot recover here
                budget[0] = 0
                _run_failed(step, cause, inputs, executed)
            budget[0] -= 1
            log.warning("prompt %s: node %s lost inputs (%s); re-running node(s) %s, then %s "
                        "again", ctx.prompt_id, nid, lost, ", ".join(stale), nid)
            for up in stale:
                ctx.node_id = up
                out = _run_recovering(up, plan, ctx, cache, sigs, values, held, executed,
                                      budget)
                result = tuple(out.result)
                cache.put(sigs[up], CachedOutput(result, out.ui))  # replaces the lost entry
                values[up] = _hold(ctx, held, result)
                ctx.release_scratch()
            ctx.node_id = nid


def _run_failed(step: Step, exc: BaseException, inputs: dict[str, Any],
                executed: list[str]) -> NoReturn:
    raise NodeExecutionError(
        step.node_id, step.class_type, str(exc) or type(exc).__name__,
        f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        traceback.format_exception(exc),
        {k: [_describe(v)] for k, v in inputs.items()}, list(executed)) from exc


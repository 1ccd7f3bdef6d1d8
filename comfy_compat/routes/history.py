"""/history (classic clients) and /api/jobs (the editor's queue and history panel), both rendered
from the backend's PromptRecords."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from comfy_compat.errors import simple_error
from comfy_compat.jsonresp import json_response
from comfy_compat.messages import history_messages, render
from comfy_compat.routes.common import (
    backend,
    call,
    int_param,
    parse_model,
    read_json,
    read_model,
    twin,
)
from comfy_compat.routes.prompt import is_canonical_uuid, public_extra, queue_item
from comfy_compat.schemas import HistoryBody, JobsCancelBody
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_JOB_STATUS = {"pending": "pending", "running": "in_progress", "success": "completed",
               "error": "failed", "interrupted": "cancelled"}
PREVIEWABLE = ("images", "video", "audio", "3d")


# --- /history ----------------------------------------------------------------------------------
def history_entry(rec: PromptRecord) -> dict[str, Any]:
    return {
        "prompt": queue_item(rec),
        "outputs": rec.outputs,
        "status": execution_status(rec),
        "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None,
                       "real_node_id": nid} for nid in rec.outputs},
    }


def execution_status(rec: PromptRecord) -> dict[str, Any]:
    return {"status_str": "success" if rec.status == "success" else "error",
            "completed": rec.status == "success",
            "messages": history_messages(rec.messages)}


async def get_history(request: Request) -> Response:
    records: list[PromptRecord] = await call(backend(request).history)
    max_items = int_param(request, "max_items", minimum=0)
    offset = int_param(request, "offset", default=-1)
    assert offset is not None
    if max_items is not None and offset < 0:
        offset = max(0, len(records) - max_items)  # max_items alone: the last N
    offset = max(0, offset)
    end = len(records) if max_items is None else offset + max_items
    return json_response({r.prompt_id: history_entry(r) for r in records[offset:end]})


async def get_history_item(request: Request) -> Response:
    rec = await call(backend(request).record, request.path_params["prompt_id"])
    if rec is None or rec.status in ("pending", "running"):
        return json_response({})
    return json_response({rec.prompt_id: history_entry(rec)})


async def post_history(request: Request) -> Response:
    body = await read_model(request, HistoryBody)
    b = backend(request)
    if body.clear:
        await call(b.clear_history)
    if body.delete:
        await call(b.delete_history, [str(x) for x in body.delete])
    return Response(status_code=200)


# --- /api/jobs -----------------------------------------------------------------------------------
def _items(outputs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(node_id, media key, item) for every list item of every node's ui output."""
    out = []
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for key, value in ui.items():
            if isinstance(value, list):
                out.extend((node_id, key, item) for item in value)
    return out


def _preview(items: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any] | None:
    candidates = [(n, k, i) for n, k, i in items if k in PREVIEWABLE and isinstance(i, dict)
                  and "filename" in i]
    candidates.sort(key=lambda c: c[2].get("type") != "output")  # stable: outputs first
    if not candidates:
        return None
    node_id, key, item = candidates[0]
    return {"filename": item.get("filename"), "subfolder": item.get("subfolder", ""),
            "type": item.get("type", "output"), "nodeId": node_id, "mediaType": key}


def job(rec: PromptRecord) -> dict[str, Any]:
    finished = rec.status not in ("pending", "running")
    items = _items(rec.outputs) if finished else []
    error = next((m for m in rec.messages if isinstance(m, ev.ExecutionError)), None)
    workflow = (rec.extra_data.get("extra_pnginfo") or {}).get("workflow")
    out: dict[str, Any] = {
        "id": rec.prompt_id,
        "status": _JOB_STATUS.get(rec.status, "failed"),
        "priority": rec.number,
        "create_time": rec.create_time or rec.extra_data.get("create_time") or 0,
        "execution_start_time": rec.start_time,
        "execution_end_time": rec.end_time if finished else None,
        "execution_error": render(error)["data"] if error is not None else None,  # type: ignore[index]
        "outputs_count": len(items),
        "previewable_outputs_count": sum(1 for _, k, _ in items if k in PREVIEWABLE),
        "preview_output": _preview(items),
        "workflow_id": workflow.get("id") if isinstance(workflow, dict) else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def job_detail(rec: PromptRecord) -> dict[str, Any]:
    detail = job(rec)
    detail["outputs"] = rec.outputs
    detail["execution_status"] = execution_status(rec)
    detail["workflow"] = {"prompt": rec.prompt, "extra_data": public_extra(rec.extra_data)}
    return detail


def _all_records(request: Request) -> list[PromptRecord]:
    b = backend(request)
    running, pending = b.queue_items()
    return [*running, *pending, *b.history()]


async def get_jobs(request: Request) -> Response:
    q = request.query_params
    statuses = [s.strip() for s in (q.get("status") or "").split(",") if s.strip()]
    bad = [s for s in statuses if s not in JOB_STATUSES]
    if bad:
        raise simple_error(400, f"Invalid status: {', '.join(bad)}; expected some of "
                           f"{', '.join(JOB_STATUSES)}")
    sort_by = q.get("sort_by") or "created_at"
    if sort_by not in ("created_at", "execution_duration"):
        raise simple_error(400, "sort_by must be 'created_at' or 'execution_duration'")
    sort_order = q.get("sort_order") or "desc"
    if sort_order not in ("asc", "desc"):
        raise simple_error(400, "sort_order must be 'asc' or 'desc'")
    limit = int_param(request, "limit", minimum=1)
    offset = int_param(request, "offset", default=0, minimum=0) or 0
    workflow_id = q.get("workflow_id")

    jobs = [job(r) for r in await call(_all_records, request)]
    if statuses:
        jobs = [j for j in jobs if j["status"] in statuses]
    if workflow_id:
        jobs = [j for j in jobs if j.get("workflow_id") == workflow_id]
    if sort_by == "created_at":
        jobs.sort(key=lambda j: j["create_time"], reverse=sort_order == "desc")
    else:
        def dur(j: dict[str, Any]) -> int:
            s, e = j.get("execution_start_time"), j.get("execution_end_time")
            return e - s if s is not None and e is not None else -1
        jobs.sort(key=dur, reverse=sort_order == "desc")
    total = len(jobs)
    page = jobs[offset:] if limit is None else jobs[offset:offset + limit]
    return json_response({"jobs": page, "pagination": {
        "offset": offset, "limit": limit, "total": total,
        "has_more": offset + len(page) < total}})


async def get_job(request: Request) -> Response:
    rec = await call(backend(request).record, request.path_params["job_id"])
    if rec is None:
        raise simple_error(404, "Job not found")
    return json_response(job_detail(rec))


async def cancel_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    cancelled = await call(backend(request).cancel, job_id)
    return json_response({"cancelled": bool(cancelled)})


async def cancel_jobs(request: Request) -> Response:
    data = await read_json(request, empty={})
    body = parse_model(data, JobsCancelBody)
    invalid = [str(j) for j in body.job_ids if not isinstance(j, str) or not is_canonical_uuid(j)]
    if invalid:
        raise simple_error(400, "Invalid job ids", invalid_ids=invalid)
    b = backend(request)
    cancelled = False
    for job_id in body.job_ids:
        cancelled = bool(await call(b.cancel, job_id)) or cancelled
    return json_response({"cancelled": cancelled})


def routes() -> list[BaseRoute]:
    return [
        *twin("/history", get_history, ["GET"]),
        *twin("/history", post_history, ["POST"]),
        *twin("/history/{prompt_id}", get_history_item, ["GET"]),
        *twin("/jobs", get_jobs, ["GET"]),
        *twin("/jobs/cancel", cancel_jobs, ["POST"]),
        *twin("/jobs/{job_id}", get_job, ["GET"]),
        *twin("/jobs/{job_id}/cancel", cancel_job, ["POST"]),
    ]

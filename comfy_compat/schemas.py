"""Pydantic models of JSON request bodies. Boundary structs only: no logic, a comment per field.
Unknown keys are ignored (clients send extras); types are checked so a client mistake is a 400."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PromptBody(_Body):
    prompt: Any = None  # API-format graph, or a UI workflow (has "nodes" and "links")
    client_id: str | None = None  # websocket sid that receives this prompt's events
    prompt_id: str | None = None  # client-chosen id: canonical lowercase uuid
    extra_data: dict[str, Any] | None = None  # extra_pnginfo.workflow, preview_method...
    number: float | None = None  # explicit priority (lower runs first)
    front: bool = False  # queue at the front
    partial_execution_targets: list[str] | None = None  # only run these output nodes


class QueueBody(_Body):
    clear: bool = False  # drop every pending prompt
    delete: list[str] = []  # pending prompt ids to drop


class HistoryBody(_Body):
    clear: bool = False  # forget every finished prompt
    delete: list[str] = []  # finished prompt ids to forget


class InterruptBody(_Body):
    prompt_id: str | None = None  # interrupt only if this prompt is the running one


class FreeBody(_Body):
    unload_models: bool = False  # drop loaded weights
    free_memory: bool = False  # also drop cached outputs


class JobsCancelBody(_Body):
    job_ids: list[Any]  # prompt ids to cancel (validated as uuids by the route)


class MaskRef(_Body):
    filename: str  # the image whose alpha the uploaded mask replaces
    subfolder: str = ""
    type: str = "input"  # input | output | temp

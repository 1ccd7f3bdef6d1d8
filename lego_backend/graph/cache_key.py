"""Input signatures: a node's cache key is a hash of its class, its constants, its fingerprint
(e.g. LoadImage's file hash) and the signatures of what feeds it. Identical upstream sub-graphs
get identical keys whatever their node ids, within one prompt and across prompts."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import orjson

from lego_backend.graph.plan import ExecutionPlan, Step

Fingerprint = Callable[[Step], Any]


def _default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return "NaN"
    return repr(obj)


def signatures(plan: ExecutionPlan, fingerprint: Fingerprint) -> dict[str, str]:
    sigs: dict[str, str] = {}
    for node_id, step in plan.steps.items():  # steps are in dependency order
        parts: list[Any] = [step.class_type, fingerprint(step)]
        for name in sorted(set(step.constants) | set(step.links)):
            if name in step.links:
                link = step.links[name]
                parts.append([name, "LINK", sigs[link.node_id], link.slot])
            else:
                parts.append([name, step.constants[name]])
        blob = orjson.dumps(parts, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
        sigs[node_id] = hashlib.sha256(blob).hexdigest()
    return sigs

"""A service whose rule allows 0 replicas scales to zero once nobody has used it for a while,
without any request arriving to trigger it, and the decision is logged; a new request brings a
replica back."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lego_backend.dataplane.store import TensorStore
from lego_backend.services.pool import ServicePool
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec
from lego_backend.services.router import ScalingRule


class EchoService(ModelService):
    def load(self) -> None:
        pass

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        return [c.args["v"] for c in calls]


def _replicas(pool: ServicePool) -> int:
    rows = pool.snapshot()
    return rows[0]["replicas"] if rows else 0


def test_cold_service_scales_to_zero_on_its_own_and_comes_back(tmp_path: Path):
    pool = ServicePool(TensorStore(), factories={"echo": EchoService},
                       scaling={"echo": ScalingRule(min_replicas=0, max_replicas=2)})
    pool.cold_after_s = 0.3
    spec = ServiceSpec("echo", "id-1", tmp_path / "w.safetensors")
    try:
        assert pool.call(spec, "echo", v=5) == 5
        assert _replicas(pool) == 1
        deadline = time.monotonic() + 10
        while _replicas(pool) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _replicas(pool) == 0
        assert pool.scaling_log[-1]["to"] == 0 and pool.scaling_log[-1]["why"].startswith("idle")
        assert pool.call(spec, "echo", v=7) == 7  # a request brings one back
        assert _replicas(pool) == 1
    finally:
        pool.close()


def test_service_with_min_one_stays_warm(tmp_path: Path):
    pool = ServicePool(TensorStore(), factories={"echo": EchoService})
    pool.cold_after_s = 0.1
    spec = ServiceSpec("echo", "id-1", tmp_path / "w.safetensors")
    try:
        pool.call(spec, "echo", v=1)
        time.sleep(1.5)
        assert _replicas(pool) == 1
    finally:
        pool.close()

"""Per-model scaling: denoiser replicas in worker processes (tensors by shared memory), the
same images as in-process, and a worker killed mid-sampling is restarted without losing the
prompt."""
from __future__ import annotations

import dataclasses
import os
import threading

import numpy as np
import pytest

from lego_backend.backend import Backend
from lego_backend.runtime import events as ev
from tests.integration.engine.helpers import (
    make_backend,
    output_files,
    pixels,
    run,
    run_concurrently,
    txt2img,
)

pytestmark = pytest.mark.slow


def _process_backend(tmp_path, models) -> Backend:
    base = make_backend(tmp_path, models)
    return Backend(dataclasses.replace(base.config, replica_runtime="process",
                                       replicas=(("denoiser", 2, 2),), torch_threads=1))


def test_denoiser_replicas_in_worker_processes(tmp_path, demo_models):
    prompts = [txt2img(seed=20 + i, steps=5) for i in range(3)]
    solo = make_backend(tmp_path / "solo", demo_models)
    expected = []
    for p in prompts:
        record, _ = run(solo, p)
        expected.append(pixels(output_files(solo, record)[0]))
    backend = _process_backend(tmp_path / "proc", demo_models)
    try:
        records = run_concurrently(backend, prompts)
        report = backend.services_report()
        den = next(s for s in report["services"] if s["kind"] == "denoiser")
        assert den["replicas"] == 2
        pids = {r["pid"] for r in den["replica_detail"]}
        assert len(pids) == 2 and os.getpid() not in pids
        assert all(r["runtime"] == "process" for r in den["replica_detail"])
        assert den["calls_run"] == 15
        for record, want in zip(records, expected):
            assert record.status == "success"
            assert np.abs(pixels(output_files(backend, record)[0]) - want).max() <= 1
    finally:
        backend.stop()


def test_worker_killed_mid_sampling_is_restarted_and_the_prompt_completes(tmp_path, demo_models):
    backend = _process_backend(tmp_path, demo_models)
    killed = threading.Event()
    outcome: list[ev.Event] = []

    def listener(event):
        outcome.append(event)
        if isinstance(event, ev.Progress) and event.value == 3 and not killed.is_set():
            killed.set()
            for replica in backend.services._all_replicas():
                if replica.service.spec.kind == "denoiser" and replica.streams:
                    replica.kill_worker()

    backend.add_listener(listener)
    try:
        record, _ = run(backend, txt2img(seed=4, steps=8))
        assert killed.is_set()
        errors = [e.exception_message for e in record.messages if isinstance(e, ev.ExecutionError)]
        assert record.status == "success", errors
        assert sum(isinstance(e, ev.ExecutionSuccess) for e in outcome) == 1
        den = next(s for s in backend.services_report()["services"] if s["kind"] == "denoiser")
        assert sum(r.get("restarts", 0) for r in den["replica_detail"]) == 1
    finally:
        backend.stop()

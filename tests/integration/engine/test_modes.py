"""Monolithic baseline (a worker per workflow kind with its own models) vs micro-serving
(shared services), and SLO admission."""
from __future__ import annotations

import dataclasses

import pytest

from lego_backend.backend import Backend
from lego_backend.errors import BackPressureError
from lego_backend.runtime.lanes import workflow_kind
from lego_backend.runtime.records import PromptRequest
from tests.integration.engine.helpers import make_backend, run, txt2img
from tests.integration.engine.test_graphs import _with_lora

pytestmark = pytest.mark.slow


def _backend(tmp_path, models, **changes) -> Backend:
    base = make_backend(tmp_path, models)
    return Backend(dataclasses.replace(base.config, **changes))


def test_monolithic_gives_each_workflow_kind_its_own_models(tmp_path, demo_models):
    mono = _backend(tmp_path / "mono", demo_models, mode="monolithic")
    micro = _backend(tmp_path / "micro", demo_models, mode="micro")
    vae_variant = txt2img(seed=2)
    vae_variant["5"]["inputs"]["width"] = 128  # a different graph, same node kinds and models
    for backend in (mono, micro):
        for prompt in (txt2img(seed=1), vae_variant):
            record, _ = run(backend, prompt)
            assert record.status == "success"
    mono_report, micro_report = mono.services_report(), micro.services_report()
    assert mono_report["mode"] == "monolithic" and micro_report["mode"] == "micro"
    # same kind (same nodes, same checkpoint) -> one lane, one copy
    assert {s["lane"] for s in mono_report["services"]} == {mono.lanes.all()[0].name}
    assert mono_report["resident_weight_bytes"] == micro_report["resident_weight_bytes"]
    # a second kind (LoRA workflow): monolithic loads a full second set of models for it
    for backend in (mono, micro):
        record, _ = run(backend, _with_lora(txt2img(seed=3)))
        assert record.status == "success"
    mono_report, micro_report = mono.services_report(), micro.services_report()
    assert len({s["lane"] for s in mono_report["services"]}) == 2
    mono_vaes = [s for s in mono_report["services"] if s["kind"] == "vae" and s["loaded"]]
    micro_vaes = [s for s in micro_report["services"] if s["kind"] == "vae" and s["loaded"]]
    assert len(mono_vaes) == 2 and len(micro_vaes) == 1  # micro shares the unchanged VAE
    assert mono_report["resident_weight_bytes"] > micro_report["resident_weight_bytes"]


def test_strict_admission_refuses_prompts_that_would_miss_their_slo(tmp_path, demo_models):
    backend = _backend(tmp_path, demo_models, admission="strict")
    record, _ = run(backend, txt2img(seed=1, steps=3))  # learns the standalone latency
    assert record.status == "success"
    standalone = backend.latency.standalone(workflow_kind(backend.compile(txt2img(steps=3))))
    assert standalone is not None and standalone > 0
    # a generous SLO is admitted; one far below the standalone time is refused with a retry hint
    ok = backend.submit(PromptRequest(txt2img(seed=2, steps=3), client_id="c",
                                      extra_data={"lego": {"slo_ms": 60_000}}))
    assert ok.prompt_id
    with pytest.raises(BackPressureError) as info:
        backend.submit(PromptRequest(txt2img(seed=3, steps=3), client_id="c",
                                     extra_data={"lego": {"slo_ms": 1}}))
    assert info.value.retry_after_s >= 1.0
    assert backend.queue_remaining() == 1  # the refused prompt was not queued


@pytest.mark.parametrize("mode", ["micro", "monolithic"])
def test_strict_admission_counts_queued_work_that_is_due_first(tmp_path, demo_models, mode):
    """Micro's denoiser batches go earliest deadline first, so prompts queued with a lax SLO do
    not delay a tight one; a monolithic worker runs its prompts in order, so they do."""
    backend = _backend(tmp_path, demo_models, admission="strict", mode=mode)
    record, _ = run(backend, txt2img(seed=1, steps=3))  # learns the standalone latency
    assert record.status == "success"
    standalone = backend.latency.standalone(workflow_kind(backend.compile(txt2img(steps=3))))
    assert standalone is not None and standalone > 0

    def submit(seed: int, slo_s: float) -> bool:
        try:
            backend.submit(PromptRequest(txt2img(seed=seed, steps=3), client_id="c",
                                         extra_data={"lego": {"slo_ms": slo_s * 1000}}))
        except BackPressureError:
            return False
        return True

    assert all(submit(10 + i, 600.0) for i in range(4))  # four lax prompts queued
    tight = 2.5 * standalone  # room for its own run and one more of the same kind
    if mode == "monolithic":
        assert not submit(20, tight)  # behind all four lax prompts
        assert backend.queue_remaining() == 4
        return
    assert submit(20, tight)  # nothing due before it
    assert submit(21, tight)  # one tight prompt due before it
    assert not submit(22, tight)  # two: it would finish at 3x standalone
    assert backend.queue_remaining() == 6


def test_memory_budget_unloads_least_recently_used_idle_services(tmp_path, demo_models):
    backend = _backend(tmp_path, demo_models, model_memory=1)  # nothing idle may stay resident
    prompt = txt2img(seed=1, steps=2)
    record, _ = run(backend, prompt)
    assert record.status == "success"
    report = backend.services_report()
    loaded = [s["kind"] for s in report["services"] if s["loaded"]]
    # only the service called last (the VAE decode) is still resident
    assert loaded == ["vae"], report
    again, _ = run(backend, txt2img(seed=2, steps=2))  # unloaded services come back on demand
    assert again.status == "success"
    unlimited = _backend(tmp_path / "all", demo_models)
    run(unlimited, prompt)
    assert all(s["loaded"] for s in unlimited.services_report()["services"])


def test_size_and_queue_limits_are_refused_up_front(tmp_path, demo_models):
    from lego_backend.errors import GraphValidationError
    backend = _backend(tmp_path, demo_models, max_pixels=256 * 256, max_queue=2,
                       max_queue_per_client=1)
    huge = txt2img()
    huge["5"]["inputs"].update(width=16384, height=16384, batch_size=64)
    with pytest.raises(GraphValidationError) as info:
        backend.submit(PromptRequest(huge, client_id="a"))
    reason = info.value.node_errors["5"].errors[0]
    assert reason.type == "custom_validation_failed" and "exceeds" in reason.details
    backend.submit(PromptRequest(txt2img(seed=1), client_id="a"))
    with pytest.raises(BackPressureError, match="already has 1"):
        backend.submit(PromptRequest(txt2img(seed=2), client_id="a"))
    backend.submit(PromptRequest(txt2img(seed=3), client_id="b"))
    with pytest.raises(BackPressureError, match="queue is full"):
        backend.submit(PromptRequest(txt2img(seed=4), client_id="c"))

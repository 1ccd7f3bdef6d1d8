"""Per-step denoiser calls over the direct channel to a replica actor on the other node
(cluster/direct.py): one direct hop per step and Ray calls only for the one-shot services, the
same image as the in-process engine; a prompt arriving while another one samples joins it at a
step boundary (one batch holds both) and both images equal their solo runs; an interrupt
mid-sampling stops the prompt within a step and the next prompt runs on the same channel."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest

from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRequest
from tests.integration.cluster.test_ray_cluster import _expected, _ray_backend, _services
from tests.integration.engine.helpers import output_files, pixels, run, txt2img

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _hops(cluster, label: str) -> int:
    return int(cluster.report()["hops"].get(label, {}).get("hops", 0))


@pytest.fixture(scope="module")
def backend(cluster, tmp_path_factory, demo_models):
    b = _ray_backend(tmp_path_factory.mktemp("steps"), demo_models)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def running(backend):
    """The same backend with its prompt runners started (prompts run concurrently)."""
    backend.start()
    return backend


def test_steps_cross_nodes_over_the_direct_channel(cluster, backend, tmp_path, demo_models):
    prompt = txt2img(seed=31, steps=5)
    want = _expected(tmp_path, demo_models, prompt)
    run(backend, txt2img(seed=30, steps=1))  # actors up, models loaded, channel open
    backend.cache.clear()  # the text encodings run again too (same texts)
    direct, calls = _hops(cluster, "direct:cross-node"), _hops(cluster, "ray:call")
    kept = _hops(cluster, "direct:kept")
    record, _ = run(backend, prompt)
    assert record.status == "success"
    assert np.abs(pixels(output_files(backend, record)[0]) - want).max() <= 1
    # one direct round trip per step (cond and uncond rows in one call), to node B and back;
    # Ray actor calls only for the two text encodings and the VAE decode
    assert _hops(cluster, "direct:cross-node") - direct == 5
    assert _hops(cluster, "ray:call") - calls == 3
    # the conditioning went at steps 1 and 2 (then kept by the actor), steps 3-5 sent its id
    assert _hops(cluster, "direct:kept") - kept == 3
    den = _services(backend)["denoiser"]["replica_detail"][0]
    assert den["step_channel"] == "direct" and den["node_ip"] == "127.0.0.3"
    assert "step_channel" not in _services(backend)["text_encoder"]["replica_detail"][0]


def test_a_prompt_arriving_mid_sampling_joins_at_a_step_boundary(running, tmp_path,
                                                                  demo_models):
    backend = running
    first, second = txt2img(seed=41, steps=20), txt2img(text="a green square", seed=42, steps=6)
    want = [_expected(tmp_path / "a", demo_models, first),
            _expected(tmp_path / "b", demo_models, second)]
    before = _denoiser(backend)
    progress: dict[str, list[int]] = {}
    third_step = threading.Event()

    def listener(event: ev.Event) -> None:
        if isinstance(event, ev.Progress) and event.node == "3":
            progress.setdefault(event.prompt_id, []).append(event.value)
            if event.prompt_id == "first" and event.value == 3:
                third_step.set()

    remove = backend.add_listener(listener)
    try:
        backend.submit(PromptRequest(copy.deepcopy(first), client_id="c", prompt_id="first"))
        assert third_step.wait(120), "the first prompt never reached step 3"
        backend.submit(PromptRequest(copy.deepcopy(second), client_id="c", prompt_id="second"))
        records = [_wait_done(backend, "first"), _wait_done(backend, "second")]
    finally:
        remove()
    assert [r.status for r in records] == ["success", "success"]
    for record, expected in zip(records, want):
        assert np.abs(pixels(output_files(backend, record)[0]) - expected).max() <= 1
    # each prompt's steps reported once and in order, though they were sampled together
    assert progress["first"] == list(range(1, 21)) and progress["second"] == list(range(1, 7))
    after = _denoiser(backend)
    calls = after["calls_run"] - before["calls_run"]
    batches = after["batches_run"] - before["batches_run"]
    assert calls == 26
    assert batches < 26, (calls, batches)  # the second prompt's steps rode with the first's


def test_an_interrupt_mid_sampling_stops_within_a_step(running):
    backend = running
    progress: list[int] = []
    third_step = threading.Event()

    def listener(event: ev.Event) -> None:
        if isinstance(event, ev.Progress) and event.prompt_id == "long":
            progress.append(event.value)
            if event.value == 3:
                third_step.set()

    remove = backend.add_listener(listener)
    before = _denoiser(backend)
    try:
        backend.submit(PromptRequest(txt2img(seed=51, steps=60), client_id="c",
                                     prompt_id="long"))
        assert third_step.wait(120)
        assert backend.interrupt("long")
        at_interrupt = progress[-1]
        record = _wait_done(backend, "long")
    finally:
        remove()
    assert record.status == "interrupted"
    # the step in flight when the interrupt came may finish; none after it starts
    assert progress == list(range(1, len(progress) + 1)) and progress[-1] <= at_interrupt + 1
    assert progress[-1] < 60
    assert _denoiser(backend)["calls_run"] - before["calls_run"] <= len(progress) + 1
    backend.submit(PromptRequest(txt2img(seed=52, steps=3), client_id="c", prompt_id="next"))
    assert _wait_done(backend, "next").status == "success"  # the channel is still in step
    # every finished or interrupted prompt's conditioning was dropped by the actor again (the
    # last one's goes with the next call): it holds at most the last prompt's
    assert _denoiser(backend)["replica_detail"][0]["kept_tensors"] <= 1


def _denoiser(backend) -> dict:
    return next(s for s in backend.services.snapshot() if s["kind"] == "denoiser")


def _wait_done(backend, prompt_id: str, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = backend.record(prompt_id)
        if record is not None and record.status in ("success", "interrupted", "error"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} never finished")

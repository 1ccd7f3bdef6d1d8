"""The event sequence a prompt produces (what the websocket turns into ComfyUI messages),
interruption at a step boundary, and node failures reported as execution errors."""
from __future__ import annotations

import threading

import pytest

from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRequest
from tests.integration.engine.helpers import Recorder, make_backend, run, txt2img

pytestmark = pytest.mark.slow


@pytest.fixture()
def backend(tmp_path, demo_models):
    return make_backend(tmp_path, demo_models)


def test_fresh_then_cached_sequence(backend):
    _, rec = run(backend, txt2img(steps=3))
    types = [t for t in rec.types() if t not in ("NodeStateChange", "QueueStatus", "Preview")]
    assert types[:2] == ["ExecutionStart", "ExecutionCached"]
    assert types[-2:] == ["ExecutionSuccess", "PromptDone"]
    executing = [e.node for e in rec.events if isinstance(e, ev.Executing)]
    assert sorted(executing) == ["3", "4", "5", "6", "7", "8", "9"]
    assert executing.index("4") < executing.index("6") < executing.index("3") < executing.index("8")
    progress = [(e.value, e.max) for e in rec.events if isinstance(e, ev.Progress)]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert all(e.client_id == "test" for e in rec.events if not isinstance(e, ev.QueueStatus))
    executed = [e for e in rec.events if isinstance(e, ev.Executed)]
    assert [e.node for e in executed] == ["9"]
    assert executed[0].output["images"][0]["type"] == "output"
    # second run: everything cached, the output node still reports its images
    _, rec2 = run(backend, txt2img(steps=3))
    cached = next(e for e in rec2.events if isinstance(e, ev.ExecutionCached))
    assert sorted(cached.nodes) == ["3", "4", "5", "6", "7", "8", "9"]
    assert not any(isinstance(e, ev.Executing) for e in rec2.events)
    assert [e.node for e in rec2.events if isinstance(e, ev.Executed)] == ["9"]
    # change only the positive text: loaders and the negative encode stay cached
    _, rec3 = run(backend, txt2img(text="something else", steps=3))
    cached = next(e for e in rec3.events if isinstance(e, ev.ExecutionCached)).nodes
    assert {"4", "5", "7"} <= set(cached) and "6" not in cached and "3" not in cached


def test_interrupt_stops_sampling_at_next_step(backend):
    rec = Recorder()
    started = threading.Event()

    def listener(event):
        rec(event)
        if isinstance(event, ev.Progress) and event.value == 2:
            started.set()

    backend.add_listener(listener)
    result = backend.submit(PromptRequest(txt2img(steps=200), client_id="test"))
    worker = threading.Thread(target=backend.run_next)
    worker.start()
    assert started.wait(120)
    assert backend.interrupt(result.prompt_id)
    worker.join(60)
    record = backend.record(result.prompt_id)
    assert record.status == "interrupted"
    last = max(e.value for e in rec.events if isinstance(e, ev.Progress))
    assert last < 200
    intr = next(e for e in rec.events if isinstance(e, ev.ExecutionInterrupted))
    assert intr.node_id == "3" and intr.node_type == "KSampler"
    assert isinstance(rec.events[-1], ev.QueueStatus) and isinstance(rec.events[-2], ev.PromptDone)
    # the backend is usable afterwards and leaked no per-step tensors
    again, _ = run(backend, txt2img(steps=2))
    assert again.status == "success"


def test_node_failure_is_an_execution_error_and_backend_keeps_serving(backend):
    prompt = txt2img(steps=2)
    # valid graph, but a 1-px wide image cannot be VAE-encoded (cropped to 0 px): the node
    # fails at run time, not at validation
    prompt["10"] = {"class_type": "EmptyImage",
                    "inputs": {"width": 1, "height": 8, "batch_size": 1, "color": 0}}
    prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"]["latent_image"] = ["11", 0]
    record, rec = run(backend, prompt)
    assert record.status == "error"
    err = next(e for e in rec.events if isinstance(e, ev.ExecutionError))
    assert err.node_id == "11" and err.node_type == "VAEEncode"
    assert err.exception_message and err.traceback
    assert "10" in err.executed
    ok, _ = run(backend, txt2img(steps=2))
    assert ok.status == "success"


def test_identical_subgraphs_in_one_prompt_run_once(backend):
    prompt = txt2img(steps=2)
    # a second, identical text encode under another id: one of the two runs, the other reuses it
    prompt["17"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}}
    prompt["3"]["inputs"]["negative"] = ["17", 0]
    prompt["7"]["inputs"]["text"] = "blurry"
    prompt["6"]["inputs"]["text"] = "blurry"  # positive == negative text too
    record, _rec = run(backend, prompt)
    assert record.status == "success"
    encoder_calls = backend.services.snapshot()
    te = [s for s in encoder_calls if s["kind"] == "text_encoder"]
    assert te[0]["calls_run"] == 1

"""Model replicas as Ray actors on a real two-node local cluster: one prompt's text encoder,
denoiser and VAE on different actors (the denoiser on the other node), images equal to the
in-process engine's, a replica killed for real mid-sampling, a second workflow reusing the first
one's denoiser replica, and a replica that keeps dying taken out of service."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest

from lego_backend.backend import Backend
from lego_backend.runtime import events as ev
from tests.integration.engine.helpers import CKPT, make_backend, output_files, pixels, run, txt2img

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _ray_backend(tmp_path, models) -> Backend:
    base = make_backend(tmp_path, models)
    return Backend(dataclasses.replace(base.config, replica_runtime="ray"))


def node_with(resource: str) -> str:
    import ray
    return next(n["NodeID"] for n in ray.nodes()
                if n.get("Alive") and resource in (n.get("Resources") or {}))


def _services(backend: Backend) -> dict[str, dict]:
    return {s["kind"]: s for s in backend.services_report()["services"]}


def _expected(tmp_path, models, prompt) -> np.ndarray:
    solo = make_backend(tmp_path, models)
    try:
        record, _ = run(solo, prompt)
        return pixels(output_files(solo, record)[0])
    finally:
        solo.stop()


def _hires(seed: int) -> dict:
    """A different workflow on the same checkpoint: txt2img, latent upscale, second pass."""
    graph = txt2img(seed=seed, steps=3)
    graph["10"] = {"class_type": "LatentUpscaleBy", "inputs": {
        "samples": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 1.5}}
    graph["11"] = {"class_type": "KSampler", "inputs": {
        "seed": seed, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 0.5, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["10", 0]}}
    graph["8"]["inputs"]["samples"] = ["11", 0]
    return graph


@pytest.fixture(scope="module")
def ray_backend(cluster, tmp_path_factory, demo_models):
    backend = _ray_backend(tmp_path_factory.mktemp("ray"), demo_models)
    yield backend
    backend.stop()


def test_prompt_runs_on_three_actors_across_two_nodes(cluster, ray_backend, tmp_path,
                                                      demo_models):
    prompt = txt2img(seed=7, steps=4)
    want = _expected(tmp_path, demo_models, prompt)
    # Every payload through the object store (the large-tensor path), steps included (they
    # go over the direct channel otherwise: test_step_channel.py).
    cluster.inline_bytes, cluster.direct = 0, False
    try:
        record, rec = run(ray_backend, prompt)
    finally:
        cluster.inline_bytes, cluster.direct = 64 * 1024, True
    assert record.status == "success", [getattr(e, "exception_message", "")
                                        for e in record.messages]
    assert np.abs(pixels(output_files(ray_backend, record)[0]) - want).max() <= 1
    assert rec.types().count("ExecutionSuccess") == 1

    services = _services(ray_backend)
    detail = {kind: services[kind]["replica_detail"] for kind in ("text_encoder", "denoiser",
                                                                    "vae")}
    for kind, replicas in detail.items():
        assert len(replicas) == 1 and replicas[0]["runtime"] == "ray", kind
        assert replicas[0]["pid"] not in (None, os.getpid()), kind
        assert replicas[0]["loaded"] and replicas[0]["resident_bytes"] > 0, kind
    assert len({r[0]["actor_id"] for r in detail.values()}) == 3
    assert len({r[0]["pid"] for r in detail.values()}) == 3
    assert detail["denoiser"][0]["node"] == node_with("node_b")
    assert detail["text_encoder"][0]["node"] == node_with("node_a")
    assert detail["vae"][0]["node"] == node_with("node_a")
    assert detail["denoiser"][0]["node_ip"] == "127.0.0.3"
    assert detail["text_encoder"][0]["node_ip"] == "127.0.0.2"

    report = ray_backend.services_report()["cluster"]
    assert len([n for n in report["nodes"] if n["alive"]]) == 2
    assert "ray" in report["transports"]
    hops = report["hops"]
    # Steps' latents went to the denoiser's node and came back; the text encoder's
    # conditioning and the VAE's image crossed too -- all through the object store.
    assert hops["ray:cross-node"]["hops"] > 0 and hops["ray:cross-node"]["bytes"] > 0
    assert hops["ray:cross-node:put"]["hops"] >= 4  # at least one latent per step


def test_second_workflow_reuses_the_first_ones_denoiser_replica(cluster, ray_backend):
    inline_before = cluster.report()["hops"].get("ray:inline", {}).get("hops", 0)
    record, _ = run(ray_backend, txt2img(seed=11, steps=3))
    assert record.status == "success"
    # the VAE's small latent rode inside its actor call (no object-store round trip)
    assert cluster.report()["hops"]["ray:inline"]["hops"] >= inline_before + 1
    before = _services(ray_backend)["denoiser"]
    started = cluster.actors_started
    record, _ = run(ray_backend, _hires(seed=12))
    assert record.status == "success"
    after = _services(ray_backend)["denoiser"]
    assert after["replicas"] == 1 and cluster.actors_started == started
    assert after["replica_detail"][0]["actor_id"] == before["replica_detail"][0]["actor_id"]
    assert after["replica_detail"][0]["pid"] == before["replica_detail"][0]["pid"]
    assert after["calls_run"] >= before["calls_run"] + 6  # both passes ran on it
    assert after["weights_identity"] == before["weights_identity"]


def test_replica_killed_mid_sampling_reruns_the_step_and_the_prompt_completes(
        cluster, ray_backend, tmp_path, demo_models):
    prompt = txt2img(seed=5, steps=8)
    want = _expected(tmp_path, demo_models, prompt)
    victim: list[int] = []
    outcome: list[ev.Event] = []

    def listener(event):
        outcome.append(event)
        if isinstance(event, ev.Progress) and event.value == 3 and not victim:
            den = _services(ray_backend)["denoiser"]["replica_detail"][0]
            victim.append(den["pid"])
            os.kill(den["pid"], signal.SIGKILL)  # the actor's worker process, for real

    remove = ray_backend.add_listener(listener)
    try:
        record, _ = run(ray_backend, prompt)
    finally:
        remove()
    assert victim
    errors = [e.exception_message for e in record.messages if isinstance(e, ev.ExecutionError)]
    assert record.status == "success", errors
    assert sum(isinstance(e, ev.ExecutionSuccess) for e in outcome) == 1
    steps = [e.value for e in outcome if isinstance(e, ev.Progress) and e.node == "3"]
    assert steps == list(range(1, 9))  # every step once: resumed, not restarted from step 1
    assert np.abs(pixels(output_files(ray_backend, record)[0]) - want).max() <= 1
    den = _services(ray_backend)["denoiser"]["replica_detail"][0]
    assert den["restarts"] == 1 and den["pid"] != victim[0] and "error" not in den


def test_replica_that_keeps_dying_is_taken_out_of_service(cluster, demo_models):
    from lego_backend.cluster.ray_replica import RayReplica
    from lego_backend.dataplane.store import TensorStore
    from lego_backend.errors import ReplicaDeadError, ServiceUnavailableError
    from lego_backend.models.identity import hash_file
    from lego_backend.services.pool import ServicePool
    from lego_backend.services.protocol import ServiceCall, ServiceSpec

    path = demo_models / "checkpoints" / CKPT
    spec = ServiceSpec("text_encoder", hash_file(path), path)
    pool = ServicePool(TensorStore(), runtime="ray")
    replica = pool.replica(spec)
    assert isinstance(replica, RayReplica)
    replica.max_restarts = 1
    killed: list[int] = []
    stop = threading.Event()

    def killer():  # every actor this replica starts dies while loading its model
        while not stop.is_set():
            pid = replica.pid
            if pid and pid not in killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        future = replica.submit(ServiceCall("encode", {"text": "a red circle"}))
        with pytest.raises(ReplicaDeadError, match="taken out of service"):
            future.result(timeout=120)
    finally:
        stop.set()
        thread.join()
    try:
        assert len(killed) == 2
        detail = pool.snapshot()[0]["replica_detail"][0]
        assert "died 2 times in a row" in detail["error"]
        with pytest.raises(ServiceUnavailableError, match="taken out of service"):
            pool.replica(spec)
    finally:
        pool.close()

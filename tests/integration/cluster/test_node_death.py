"""A whole Ray node dies mid-request, for real: every process of the second node (its raylet,
agents and the worker running the text encoder actor) is SIGKILLed while the prompt's KSampler
starts, after the text encoder ran there and before the sampler read its conditioning, which
lived only in that node's object store. The executor re-runs the two text encodings on a new
text encoder actor placed on the surviving node and runs the KSampler again: one
execution_success, every step reported once, the same image as the in-process engine.
A second test kills the node while the denoiser actor there is sampling over its direct
channel: the replica finds the actor gone, starts a new one on the surviving node, and the
prompt resumes at the step that was cut short.
The node is started again afterwards so the package's other tests keep their two nodes."""
from __future__ import annotations

import time

import numpy as np
import pytest

from lego_backend.runtime import events as ev
from tests.integration.cluster.test_ray_cluster import _expected, _ray_backend, _services
from tests.integration.engine.helpers import output_files, pixels, run, txt2img

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _alive_with(resource: str) -> list[str]:
    import ray
    return [n["NodeID"] for n in ray.nodes()
            if n.get("Alive") and resource in (n.get("Resources") or {})]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def text_encoder_on_node_b(cluster):
    """Text encoder preferring node B (soft: it may move when B dies), denoiser and VAE on A."""
    from lego_backend.cluster.placement import ActorResources

    before = dict(cluster.resources)
    cluster.resources = {"text_encoder": ActorResources(prefer=("node_b",)),
                         "denoiser": ActorResources(custom=(("node_a", 0.01),)),
                         "vae": ActorResources(custom=(("node_a", 0.01),))}
    yield
    cluster.resources = before


def test_node_death_mid_request_reruns_lost_upstream_nodes_and_completes(
        cluster, text_encoder_on_node_b, second_node, tmp_path, demo_models):
    prompt = txt2img(seed=21, steps=6)
    want = _expected(tmp_path, demo_models, prompt)
    node_a, node_b = _alive_with("node_a")[0], _alive_with("node_b")[0]
    backend = _ray_backend(tmp_path / "ray", demo_models)
    killed: list[int] = []
    placed: list[str] = []  # the text encoder's node when the KSampler started
    outcome: list[ev.Event] = []

    def listener(event: ev.Event) -> None:
        outcome.append(event)
        # Listeners run on the executor's thread: the KSampler starts only after this returns,
        # so its first read of the conditioning finds the node gone.
        if isinstance(event, ev.Executing) and event.node == "3" and not killed:
            placed.append(_services(backend)["text_encoder"]["replica_detail"][0]["node"])
            killed.extend(second_node.kill())

    remove = backend.add_listener(listener)
    try:
        started = time.monotonic()
        record, _ = run(backend, prompt)
        took = time.monotonic() - started
        errors = [e.exception_message for e in record.messages
                  if isinstance(e, ev.ExecutionError)]
        assert killed, f"the second node was never killed ({placed})"
        assert placed == [node_b]  # the text encoder ran there
        assert record.status == "success", errors
        assert sum(isinstance(e, ev.ExecutionSuccess) for e in outcome) == 1
        assert [e.node for e in outcome if isinstance(e, ev.Executed)] == ["9"]  # once
        steps = [e.value for e in outcome if isinstance(e, ev.Progress) and e.node == "3"]
        assert steps == list(range(1, 7))
        assert np.abs(pixels(output_files(backend, record)[0]) - want).max() <= 1

        services = _services(backend)
        encoder = services["text_encoder"]["replica_detail"][0]
        assert encoder["node"] == node_a and encoder["restarts"] >= 1, encoder
        assert "error" not in encoder
        assert services["denoiser"]["replica_detail"][0]["node"] == node_a
        nodes = {n["node"]: n["alive"] for n in cluster.report()["nodes"]}
        assert nodes[node_b] is False and nodes[node_a] is True
        print(f"prompt with the node killed took {took:.1f}s")
    finally:
        remove()
        backend.stop()
        # Bring node B back for the other tests (a new node id, same address and resource).
        if killed:
            _wait(lambda: node_b not in _alive_with("node_b"), 60, "node B declared dead")
            second_node.start()
        _wait(lambda: bool(_alive_with("node_b")), 60, "node B to rejoin")


@pytest.fixture
def denoiser_on_node_b(cluster):
    """Denoiser preferring node B (soft: it moves when B dies), text encoder and VAE on A."""
    from lego_backend.cluster.placement import ActorResources

    before = dict(cluster.resources)
    cluster.resources = {"text_encoder": ActorResources(custom=(("node_a", 0.01),)),
                         "denoiser": ActorResources(prefer=("node_b",)),
                         "vae": ActorResources(custom=(("node_a", 0.01),))}
    yield
    cluster.resources = before


def test_node_death_mid_sampling_moves_the_denoiser_and_resumes(
        cluster, denoiser_on_node_b, second_node, tmp_path, demo_models):
    prompt = txt2img(seed=23, steps=6)
    want = _expected(tmp_path, demo_models, prompt)
    node_a, node_b = _alive_with("node_a")[0], _alive_with("node_b")[0]
    backend = _ray_backend(tmp_path / "ray", demo_models)
    killed: list[int] = []
    placed: list[str] = []  # the denoiser's node when it was killed
    outcome: list[ev.Event] = []

    def listener(event: ev.Event) -> None:
        outcome.append(event)
        if isinstance(event, ev.Progress) and event.value == 3 and not killed:
            placed.append(_services(backend)["denoiser"]["replica_detail"][0]["node"])
            killed.extend(second_node.kill())

    remove = backend.add_listener(listener)
    try:
        record, _ = run(backend, prompt)
        errors = [e.exception_message for e in record.messages
                  if isinstance(e, ev.ExecutionError)]
        assert killed and placed == [node_b]  # it was sampling on node B, over the channel
        assert record.status == "success", errors
        assert sum(isinstance(e, ev.ExecutionSuccess) for e in outcome) == 1
        steps = [e.value for e in outcome if isinstance(e, ev.Progress) and e.node == "3"]
        assert steps == list(range(1, 7))  # resumed at step 4, not restarted
        assert np.abs(pixels(output_files(backend, record)[0]) - want).max() <= 1
        den = _services(backend)["denoiser"]["replica_detail"][0]
        # (a first replacement may still be placed on B before Ray has declared it dead, and
        # die too: then a second one starts on A)
        assert den["node"] == node_a and den["restarts"] >= 1 and "error" not in den, den
        assert den["step_channel"] == "direct"
    finally:
        remove()
        backend.stop()
        if killed:
            _wait(lambda: node_b not in _alive_with("node_b"), 60, "node B declared dead")
            second_node.start()
        _wait(lambda: bool(_alive_with("node_b")), 60, "node B to rejoin")

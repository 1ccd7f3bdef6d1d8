"""The bench client against a real `lego serve` subprocess on the demo models: every workflow
kind of the mix runs, latencies are measured, the services report is read, the queue drains."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lego_backend.bench.client import BenchClient
from lego_backend.bench.mix import KINDS, MixConfig, RequestFactory, input_images, load_prompts
from lego_backend.bench.server import ServerProcess, ServerSpec, ServerStartError
from lego_backend.bench.stats import OK, summarize

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["micro", "monolithic"])
def test_replay_of_every_kind_against_lego_serve(tmp_path: Path, demo_models: Path, mode: str):
    cfg = MixConfig(steps=4, hires_steps=4)  # plumbing, not speed: few steps
    factory = RequestFactory(cfg, load_prompts(), seed=5)
    # generous SLOs: this checks the plumbing, not the speed
    requests = [factory.make(kind, slo_ms=60_000.0) for kind in KINDS]
    arrivals = [0.1 * i for i in range(len(requests))]

    async def go():
        async with BenchClient(server.base_url) as client:
            for name, data in input_images(cfg).items():
                assert await client.upload_image(name, data) == name
            results, duration = await client.replay(arrivals, requests)
            drained = await client.drain(30.0)
            return results, duration, drained, await client.services()

    spec = ServerSpec(mode=mode, models=demo_models, workdir=tmp_path / mode, threads=1)
    with ServerProcess(spec) as server:
        results, duration, drained, services = asyncio.run(go())
    assert [r.status for r in results] == [OK] * len(KINDS), [r.detail for r in results]
    assert [r.kind for r in results] == list(KINDS)
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in results)
    stats = summarize(results, duration)
    assert stats.attainment == 1.0 and stats.p99_ms is not None
    assert drained
    assert services["mode"] == mode
    assert services["resident_weight_bytes"] > 0
    assert services["mean_denoiser_batch"] >= 1.0
    images = list((tmp_path / mode / "output" / "lego_bench").glob("*.png"))
    assert len(images) == len(KINDS)


def test_a_bad_server_flag_fails_fast_with_the_log(tmp_path: Path, demo_models: Path):
    spec = ServerSpec(mode="no-such-mode", models=demo_models, workdir=tmp_path / "bad")
    with pytest.raises(ServerStartError, match="no-such-mode"), ServerProcess(spec):
        pass

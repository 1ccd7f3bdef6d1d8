"""The batching bound: what a profile's batch-size curves allow micro-serving to gain over
one-prompt-at-a-time workers, per bench kind and for the mix, computed by hand on a toy."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_helpers import toy_doc

from lego_backend.bench import mix as bench_mix
from lego_backend.sim import batching_bound as bb
from lego_backend.sim.fidelity import bench_request
from lego_backend.sim.profile import profile_from_dict
from lego_backend.sim.simulate import standalone_s

DATA = Path(__file__).parent / "data" / "fidelity"


def _toy():
    doc = toy_doc()
    doc["device_type"] = "cpu"
    doc["overhead_ms"] = {"request_pre": 3, "request_post": 7, "step": 1}
    return profile_from_dict(doc, "toy")


def test_alone_is_the_simulators_standalone_latency() -> None:
    profile = _toy()
    mix = bench_mix.MixConfig(steps=10, hires_steps=4).as_dict()
    for kind in bench_mix.KINDS:
        r = bench_request(0, 0.0, kind, mix, profile, None)
        assert bb.request_cost_s(profile, r, bb.alone) == pytest.approx(
            standalone_s(profile, r, 0.0)), kind


def test_batched_costs_by_hand() -> None:
    # toy: step 10 + 2(b-1) ms, ControlNet 5 + (b-1), encode 5, decode 5 (flat: no gain)
    profile = _toy()
    mix = bench_mix.MixConfig(steps=10, hires_steps=4).as_dict()
    r = bench_request(0, 0.0, bench_mix.CONTROLNET, mix, profile, None)
    # at batch 8: step 24/8 = 3, ControlNet 12/8 = 1.5, encode and decode 5/8 each
    at8 = 3 + 7 + 10 * (3 + 1.5 + 1) + 2 * 5 / 8
    assert bb.request_cost_s(profile, r, bb.at_max_batch) * 1000 == pytest.approx(at8)
    # in the limit: marginal cost between batches 4 and 8: step 2, ControlNet 1, encode and
    # decode 0
    lim = 3 + 7 + 10 * (2 + 1 + 1)
    assert bb.request_cost_s(profile, r, bb.in_the_limit) * 1000 == pytest.approx(lim)
    assert bb.request_cost_s(profile, r, bb.in_the_limit, overheads=False) * 1000 == \
        pytest.approx(10 * (2 + 1))


def test_mix_ratio_weights_kinds_by_the_mix() -> None:
    profile = _toy()
    only_txt = bench_mix.MixConfig(steps=10, weights=tuple(
        (k, 1.0 if k == bench_mix.TXT2IMG else 0.0) for k in bench_mix.KINDS)).as_dict()
    b = bb.bound(profile, only_txt)
    txt = next(k for k in b.kinds if k.kind == bench_mix.TXT2IMG)
    assert b.mean_alone_ms == pytest.approx(txt.alone_ms)
    assert b.ratio_at_max_batch == pytest.approx(txt.alone_ms / txt.at_max_batch_ms, rel=1e-3)
    assert b.max_batch == 8


def test_recorded_cpu_profile_cannot_give_micro_4x_monolithic_throughput(capsys) -> None:
    # the measured profile of this 2-core machine (docs/serving-performance.md): even a micro
    # server that paid no per-request overheads and batched without limit would do under 3x
    rc = bb.main([str(DATA / "cpu-profile.json"), "--bench-results",
                  str(DATA / "bench-full-results.json")])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 1.5 < doc["ratio_at_max_batch"] <= doc["ratio_in_the_limit"] < 2.5
    assert doc["ratio_forwards_in_the_limit"] < 3.0

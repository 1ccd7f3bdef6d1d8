"""Profile files: the schema, interpolation, and the shipped published-GPU profile, which must be
exactly what derive_published.py makes of the attributed DiffServe CSVs."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from lego_backend.sim import derive_published
from lego_backend.sim.profile import load_profile, profile_from_dict, validate_profile


def _shipped() -> dict:
    text = resources.files("lego_backend.sim.profiles").joinpath("gpu-published.json"
                                                                  ).read_text("utf-8")
    return json.loads(text)


def test_shipped_profile_is_well_formed_and_marked_published() -> None:
    doc = _shipped()
    assert validate_profile(doc) == []
    assert doc["derived_from_published"] is True
    assert any("DiffServe" in s for s in doc["sources"])
    assert {m["kind"] for m in doc["models"]} == {"sd15", "sdxl"}


def test_shipped_profile_equals_a_fresh_derivation() -> None:
    assert json.loads(json.dumps(derive_published.build())) == _shipped()


def test_derivation_reproduces_the_published_request_latency() -> None:
    """50 steps + encode + decode gives back DiffServe's whole-request latency per batch."""
    prof = load_profile()
    for kind, published in (("sd15", {1: 1780, 8: 6790, 32: 25350}),
                            ("sdxl", {1: 6100, 16: 79110})):
        m = prof.model(kind)
        for b, ms in published.items():
            assert 1000 * (m.encode(b) + 50 * m.step(b) + m.decode(b)) == pytest.approx(ms,
                                                                                      rel=1e-3)
    assert prof.model("sdxl").max_batch == 16  # batch 32 did not fit (100000 in the CSV)


def test_interpolation_and_limits(toy_profile) -> None:
    m = toy_profile.model("toy")
    assert m.step(1) == pytest.approx(0.010)
    assert m.step(3) == pytest.approx((0.012 + 0.016) / 2)
    assert m.standalone(10, 0) == pytest.approx(0.005 + 10 * 0.010 + 0.005)
    with pytest.raises(ValueError):
        m.step(9)


def test_schema_problems_are_reported() -> None:
    assert validate_profile({"schema": "x", "models": []})
    doc = _shipped()
    doc["models"][0]["rows"][0]["step_ms"] = "fast"
    del doc["models"][1]["load_ms"]["lora"]
    problems = validate_profile(doc)
    assert any("step_ms" in p for p in problems) and any("load_ms" in p for p in problems)
    with pytest.raises(ValueError):
        profile_from_dict(doc)


def test_profile_check_requests_cannot_hit_the_output_cache() -> None:
    """`lego profile` times each bench kind alone; a request equal in text and seed to an
    earlier one would be answered (in part) from the server's cross-prompt cache, as a hires
    fix's first pass was by the txt2img before it."""
    from lego_backend.bench.mix import KINDS
    from lego_backend.sim.measure_profile import check_requests

    kinds_steps = [("txt2img", 4), ("txt2img", 20)] + [(k, 20) for k in KINDS if k != "txt2img"]
    seen_text, seen_seed = set(), set()
    for rep in range(3):
        reqs = check_requests(kinds_steps, rep)
        assert [r.kind for r in reqs] == [k for k, _ in kinds_steps]
        for r in reqs:
            text = r.prompt["pos"]["inputs"]["text"]
            seeds = {n["inputs"]["seed"] for n in r.prompt.values()
                     if n["class_type"] == "KSampler"}
            assert text not in seen_text and not seeds & seen_seed, (rep, r.kind)
            seen_text.add(text)
            seen_seed |= seeds


def test_step_overhead_subtracts_the_servers_own_forward_time() -> None:
    from lego_backend.sim.measure_profile import overheads_from

    # lone txt2img runs at 4 and 20 steps: 12 ms more per step end to end, of which the
    # server's denoiser was busy 9 ms per step; the process's CPU grew 10 ms per step
    timed = {"e2e": {"txt2img@4": [100.0, 101.0, 99.0], "txt2img@20": [292.0, 292.0, 293.0]},
             "posts": [5.0, 6.0, 7.0],
             "cpu": {"txt2img@4": [80.0], "txt2img@20": [240.0]},
             "busy": {"txt2img@4": [36.0], "txt2img@20": [180.0]}}
    model = {"rows": [{"step_ms": 20.0, "encode_ms": 1.0, "decode_ms": 9.0}],
             "step_cpu_ms_batch1": 20.0}
    over, checks = overheads_from(timed, model, 4, 20, 20)
    assert over["step"] == pytest.approx(3.0)  # 12 - 9, not 12 - the profile's 20 (-> 0)
    assert over["step_cpu"] == pytest.approx(1.0)  # 10 - 9
    assert over["request_pre"] == pytest.approx(6.0)
    assert over["request_post"] == pytest.approx(292.0 - 6.0 - 1.0 - 20 * 12.0 - 9.0)
    assert checks["server_step_forward_ms"] == pytest.approx(9.0)
    # a server that does not show busy time: the profile's own forward, as before
    del timed["busy"]
    timed["busy"] = {}
    over, _ = overheads_from(timed, model, 4, 20, 20)
    assert over["step"] == 0.0


def test_controlnet_call_overhead_is_the_excess_outside_forwards_per_step() -> None:
    from lego_backend.sim.measure_profile import controlnet_call_ms, overheads_from

    # txt2img: 220 ms end to end, 200 busy -> 20 outside; ControlNet: 400 end to end, 190
    # denoiser + 130 ControlNet busy -> 80 outside: 60 ms more over 20 steps = 3 ms per call
    timed = {"e2e": {"txt2img@4": [60.0], "txt2img@20": [220.0],
                     "txt2img_controlnet@20": [400.0, 399.0, 401.0]},
             "posts": [5.0], "cpu": {},
             "busy": {"txt2img@4": [40.0], "txt2img@20": [200.0],
                      "txt2img_controlnet@20": [190.0]},
             "busy_controlnet": {"txt2img@20": [0.0], "txt2img_controlnet@20": [130.0]}}
    assert controlnet_call_ms(timed, 20) == pytest.approx(3.0)
    model = {"rows": [{"step_ms": 10.0, "encode_ms": 1.0, "decode_ms": 9.0}]}
    over, _ = overheads_from(timed, model, 4, 20, 20)
    assert over["controlnet_call"] == pytest.approx(3.0)
    # a ControlNet request that spends less outside its forwards: no negative overhead
    timed["e2e"]["txt2img_controlnet@20"] = [330.0]
    assert controlnet_call_ms(timed, 20) == 0.0
    # no ControlNet busy time shown (older server): not measured, not guessed
    del timed["busy_controlnet"]
    assert controlnet_call_ms(timed, 20) is None
    assert "controlnet_call" not in overheads_from(timed, model, 4, 20, 20)[0]


def test_a_scaled_profile_multiplies_every_time() -> None:
    from lego_backend.sim.profile import load_profile

    prof = load_profile()  # the shipped GPU profile
    slow = prof.scaled(1.25)
    for kind, m in prof.models.items():
        s = slow.models[kind]
        assert s.step(1) == pytest.approx(1.25 * m.step(1))
        assert s.step(m.max_batch) == pytest.approx(1.25 * m.step(m.max_batch))
        assert s.decode(1) == pytest.approx(1.25 * m.decode(1))
        assert s.load_s == pytest.approx({c: 1.25 * v for c, v in m.load_s.items()})
        assert s.weights_bytes == m.weights_bytes  # sizes are not times
    assert slow.overhead.request_post == pytest.approx(1.25 * prof.overhead.request_post)
    assert slow.speedup == prof.speedup


def test_host_sharing_counts_what_k_threads_get_done_together() -> None:
    import time

    from lego_backend.sim.measure_profile import measure_speedup

    # work that waits without the cores (as a forward whose cores are elsewhere): k threads
    # get k times as much done; work that holds the interpreter lock: no more than one
    waiting = measure_speedup(lambda: time.sleep(0.002), [1, 2, 4], 0.15, rounds=3)
    assert waiting["1"] == 1.0
    assert waiting["2"] > 1.5 and waiting["4"] > 2.5

    def spin() -> None:  # a fixed amount of pure-Python work
        n = 0
        for i in range(20_000):
            n += i
    holding = measure_speedup(spin, [1, 2], 0.15, rounds=3)
    assert holding["2"] < 1.4

"""The replay client against a fake ComfyUI server: outcomes, latency, uploads, draining, the
services report and its absence, and loopback-only."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from lego_backend.bench.client import BenchClient, ClientLimits, check_loopback, prompt_body
from lego_backend.bench.config import quick_config
from lego_backend.bench.measure import ModeRunner
from lego_backend.bench.mix import (
    CONTROLNET,
    HIRES,
    IMG2IMG,
    KINDS,
    LORA_A,
    TXT2IMG,
    BenchRequest,
    MixConfig,
    RequestFactory,
    input_images,
)
from lego_backend.bench.stats import ERROR, OK, REJECTED, TIMEOUT
from tests.unit.bench.fake_comfy import FakeComfy, Running, Script

PROMPTS = ["a red circle", "a blue square", "a green triangle"]


@pytest.fixture()
def fake() -> FakeComfy:
    return FakeComfy(Script(delay_s=0.05, reject_kinds={LORA_A}, error_kinds={CONTROLNET},
                            hang_kinds={HIRES}, invalid_kinds={IMG2IMG}))


@pytest.fixture()
def url(fake: FakeComfy) -> Iterator[str]:
    with Running(fake) as u:
        yield u


def make(kind: str, slo_ms: float | None = 1000.0) -> BenchRequest:
    return RequestFactory(MixConfig(), PROMPTS, seed=1).make(kind, slo_ms)


def run(url: str, coro_fn: Any, limits: ClientLimits | None = None) -> Any:
    async def go() -> Any:
        async with BenchClient(url, limits) as client:
            return await coro_fn(client)
    return asyncio.run(go())


def test_ok_request_measures_latency_and_sends_the_slo(url, fake):
    r = run(url, lambda c: c.run_one(make(TXT2IMG, 750.0), index=3, scheduled_s=1.5))
    assert r.status == OK, r.detail
    assert r.latency_ms is not None and r.latency_ms >= 50.0  # the fake's delay
    assert (r.index, r.kind, r.scheduled_s, r.slo_ms) == (3, TXT2IMG, 1.5, 750.0)
    body = fake.prompts[-1]
    assert body["extra_data"] == {"lego": {"slo_ms": 750.0}}
    assert body["client_id"] and body["prompt"]["save"]["class_type"] == "SaveImage"


def test_outcomes_rejected_error_invalid_and_timeout(url):
    limits = ClientLimits(timeout_slo_factor=1.0, min_timeout_s=0.3)
    rejected = run(url, lambda c: c.run_one(make(LORA_A)), limits)
    assert rejected.status == REJECTED and "Retry-After: 2" in rejected.detail
    error = run(url, lambda c: c.run_one(make(CONTROLNET)), limits)
    assert error.status == ERROR and "boom" in error.detail
    invalid = run(url, lambda c: c.run_one(make(IMG2IMG)), limits)
    assert invalid.status == ERROR and "HTTP 400" in invalid.detail
    hung = run(url, lambda c: c.run_one(make(HIRES, 100.0)), limits)
    assert hung.status == TIMEOUT and hung.latency_ms is None
    assert not any(r.met_slo for r in (rejected, error, invalid, hung))


def test_request_without_slo_sends_no_extra_data(url, fake):
    assert run(url, lambda c: c.run_one(make(TXT2IMG, None))).status == OK
    assert "extra_data" not in fake.prompts[-1]


def test_replay_sends_every_request_in_trace_order(url, fake):
    reqs = [make(TXT2IMG) for _ in range(6)]
    arrivals = [0.0, 0.02, 0.04, 0.3, 0.31, 0.5]
    results, duration = run(url, lambda c: c.replay(arrivals, reqs))
    assert [r.index for r in results] == list(range(6))
    assert all(r.status == OK for r in results)
    assert [r.scheduled_s for r in results] == arrivals
    assert all(r.sent_s >= r.scheduled_s - 1e-3 for r in results)  # never early
    assert duration >= 0.5
    sent = [b["prompt"]["pos"]["inputs"]["text"] for b in fake.prompts]
    assert sent == [r.prompt["pos"]["inputs"]["text"] for r in reqs]
    with pytest.raises(ValueError):
        run(url, lambda c: c.replay([0.0], reqs))


def test_upload_and_drain(url, fake):
    images = input_images(MixConfig())
    names = run(url, lambda c: asyncio.gather(*(c.upload_image(n, d) for n, d in images.items())))
    assert sorted(names) == sorted(images)
    assert fake.uploads == images
    assert run(url, lambda c: c.drain(5.0)) is True
    assert fake.calls[:3] == ["POST /queue", "POST /interrupt", "GET /queue"]


def test_services_missing_counts_as_zeros(url):
    s = run(url, lambda c: c.services())
    assert s["resident_weight_bytes"] == 0 and s["mean_denoiser_batch"] == 0.0


def test_services_report_is_passed_through():
    report = {"mode": "micro", "services": [{"kind": "denoiser"}],
              "resident_weight_bytes": 1234, "mean_denoiser_batch": 2.5}
    with Running(FakeComfy(Script(services=report))) as u:
        assert run(u, lambda c: c.services()) == report


def test_only_loopback_servers():
    for ok in ("http://127.0.0.1:8188", "http://localhost:1", "http://[::1]:80"):
        check_loopback(ok)
    for bad in ("http://10.0.0.2:8188", "http://example.com", "http://0.0.0.0:8188"):
        with pytest.raises(ValueError):
            check_loopback(bad)
    with pytest.raises(ValueError):
        BenchClient("http://192.168.1.1:8188")


def test_prompt_body_shape():
    req = make(KINDS[0], 123.4567)
    body = prompt_body(req, "cid")
    assert body["client_id"] == "cid" and body["prompt"] is req.prompt
    assert body["extra_data"]["lego"]["slo_ms"] == 123.457


def test_request_timeout_bounds():
    lim = ClientLimits(timeout_slo_factor=3.0, min_timeout_s=5.0, no_slo_timeout_s=60.0)
    assert lim.request_timeout_s(None) == 60.0
    assert lim.request_timeout_s(1000.0) == 5.0
    assert lim.request_timeout_s(4000.0) == 12.0


def test_saturation_sends_n_at_once_without_slos_and_reports_completions_per_second():
    fake = FakeComfy(Script(delay_s=0.2, error_kinds={CONTROLNET}))
    with Running(fake) as url:
        runner = ModeRunner(url, quick_config(), PROMPTS)
        sat = runner.saturation(12)
    assert len(fake.prompts) == 12
    assert all("extra_data" not in body for body in fake.prompts)  # no SLO: nothing abandoned
    failed = sum(1 for body in fake.prompts
                 if body["prompt"]["save"]["inputs"]["filename_prefix"].endswith(CONTROLNET))
    assert sat["requests"] == 12 and sat["ok"] == 12 - failed and sat["drained"] is True
    # the fake runs every prompt at once: the makespan is about one delay, not twelve
    assert 0.2 <= sat["makespan_s"] < 1.5
    assert sat["requests_per_s"] == pytest.approx(sat["ok"] / sat["makespan_s"], rel=1e-2)


def test_fixed_rates_replace_the_search_with_long_points():
    """`lego bench --rates 2,4 --requests-per-point 6`: exactly those rates, ~6 requests each
    (duration = requests / rate, not clamped up to the preset's minimum duration)."""
    fake = FakeComfy(Script(delay_s=0.01))
    cfg = quick_config(rate_points=(4.0, 2.0), requests_per_point=6, min_duration_s=0.5,
                       max_duration_s=60.0)
    with Running(fake) as url:
        runner = ModeRunner(url, cfg, PROMPTS)
        result = runner.rate_sweep(start=99.0, slos={k: 5000.0 for k in KINDS})
    assert [p.value for p in result.points] == [2.0, 4.0]  # the start of a search is ignored
    assert [p.detail["trace"]["duration_s"] for p in result.points] == [3.0, 1.5]
    assert result.best == 4.0
    assert len(fake.prompts) == sum(p.detail["n"] for p in result.points)


def test_bench_cli_reads_fixed_points_and_refuses_bad_ones(capsys):
    from lego_backend.bench.run import _config, build_parser

    args = build_parser().parse_args(["--out", "x", "--rates", "1,1.5", "--bursts", "2,3",
                                      "--requests-per-point", "120", "--max-duration", "90",
                                      "--point-lone-reps", "2"])
    cfg = _config(args)
    assert cfg.rate_points == (1.0, 1.5) and cfg.burst_points == (2.0, 3.0)
    assert cfg.requests_per_point == 120 and cfg.max_duration_s == 90.0
    assert cfg.point_lone_reps == 2
    assert cfg.as_dict()["rate_points"] == (1.0, 1.5)
    for bad in (["--rates", "0,1"], ["--rates", "a"], ["--bursts", "0.5"],
                ["--requests-per-point", "0"], ["--requests-per-point", "1.5"],
                ["--max-duration", "inf"], ["--point-lone-reps", "-1"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--out", "x", *bad])
        assert "lego bench: error" in capsys.readouterr().err


def test_points_record_every_kinds_lone_latency_right_before_them():
    """`--point-lone-reps 2`: before the point's trace, each kind alone twice, medians kept
    as the point's `lone_ms`; those prompts are not the trace's and come first."""
    fake = FakeComfy(Script(delay_s=0.02))
    cfg = quick_config(rate_points=(3.0,), requests_per_point=6, min_duration_s=0.5,
                       point_lone_reps=2)
    with Running(fake) as url:
        runner = ModeRunner(url, cfg, PROMPTS)
        result = runner.rate_sweep(start=1.0, slos={k: 5000.0 for k in KINDS})
    point = result.points[0]
    assert set(point.detail["lone_ms"]) == set(KINDS)
    assert all(20.0 <= ms < 1000.0 for ms in point.detail["lone_ms"].values())
    lone = fake.prompts[:2 * len(KINDS)]
    assert all("extra_data" not in body for body in lone)  # alone: no SLO to abandon them by
    assert len(fake.prompts) == 2 * len(KINDS) + point.detail["n"]
    assert all("extra_data" in body for body in fake.prompts[2 * len(KINDS):])
    plain = quick_config(rate_points=(3.0,), requests_per_point=6, min_duration_s=0.5)
    with Running(FakeComfy(Script(delay_s=0.0))) as url:
        assert "lone_ms" not in ModeRunner(url, plain, PROMPTS).rate_sweep(
            1.0, {k: 5000.0 for k in KINDS}).points[0].detail

"""The closed-loop throughput benchmark (lego_backend/bench/closed_loop.py) and the replayed step
cost (bench/step_cost.py) on the demo models: every prompt finishes, what they report adds up."""
from __future__ import annotations

from pathlib import Path

import pytest

from lego_backend.bench.closed_loop import run

pytestmark = pytest.mark.slow


def test_closed_loop_runs_every_prompt_and_batches_in_micro_mode(demo_models: Path):
    result = run("micro", demo_models, n=6, steps=3, concurrency=6)
    assert result.errors == 0
    assert result.requests == 6
    assert result.requests_per_s == pytest.approx(6 / result.makespan_s, rel=0.01)
    assert result.cpu_s_per_request > 0
    # 6 prompts of 3 steps each (hires: two passes) need at least 18 denoiser calls
    assert result.denoiser_batches * result.mean_denoiser_batch >= 18 - 0.01
    assert result.mean_denoiser_batch >= 1.0


def test_step_cost_replays_a_mixed_lora_batch(demo_models: Path):
    from lego_backend.bench.step_cost import measure

    cost = measure(demo_models, "a,,b", reps=3)
    assert (cost.calls, cost.rows, cost.reps) == (3, 6, 3)
    assert 0 < cost.cpu_ms_min <= cost.cpu_ms_median
    with pytest.raises(ValueError, match="letters"):
        measure(demo_models, "a,z", reps=1)

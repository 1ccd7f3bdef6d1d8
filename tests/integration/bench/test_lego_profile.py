"""`lego profile` on the demo models, forwards only: a valid CPU profile whose service times
are what the server's replicas would see (each forward timed at the thread count they keep)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lego_backend.sim.measure_profile import main as profile_main
from lego_backend.sim.profile import load_profile, validate_profile


def test_forwards_only_profile_is_valid_and_loadable(tmp_path: Path, demo_models: Path) -> None:
    out = tmp_path / "cpu.json"
    before = torch.get_num_threads()
    try:
        code = profile_main(["--out", str(out), "--models", str(demo_models), "--sizes", "64",
                             "--batches", "1,2", "--reps", "1", "--speedup-jobs", "1,2",
                             "--speedup-seconds", "0.2", "--no-server"])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    doc = json.loads(out.read_text())
    assert validate_profile(doc) == [] and doc["device_type"] == "cpu"
    model = doc["models"][0]
    assert [r["batch"] for r in model["rows"]] == [1, 2]
    assert all(r["step_ms"] > 0 and r["decode_ms"] > 0 for r in model["rows"])
    # the batch-1 step was timed at torch's default and at 1 thread; the faster is recorded
    assert model["step_threads"] in {1, before}
    assert set(doc["host"]["concurrency_speedup"]) == {"1", "2"}
    assert load_profile(out).models  # the simulator reads it

"""`lego run`: progress bars, printed paths, identical bytes across processes, clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def lego(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEGO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "lego_backend.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def small_example(tmp_path: Path) -> Path:
    prompt = json.loads((REPO / "examples/workflows/txt2img.json").read_text())
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["3"]["inputs"]["steps"] = 3
    prompt["4"]["inputs"]["ckpt_name"] = "lego-demo-sd15.safetensors"  # the fast random model
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(prompt))
    return path


def test_run_prints_progress_and_paths_and_is_deterministic_across_processes(tmp_path, demo_models):
    wf = small_example(tmp_path)
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        res = lego("run", str(wf), "--set", '6.text="a blue square"', "--models", str(demo_models),
                   "--output", str(out), home=tmp_path / "home")
        assert res.returncode == 0, res.stderr
        assert "3 KSampler [" in res.stderr and "3/3" in res.stderr
        printed = [Path(line) for line in res.stdout.split()]
        assert printed == [out / "ComfyUI_00001_.png"]
        outs.append(printed[0].read_bytes())
    assert outs[0] == outs[1]
    assert b"a blue square" in outs[0]  # the --set value is in the prompt metadata


def test_run_reports_every_problem_without_traceback(tmp_path, demo_models):
    wf = small_example(tmp_path)
    res = lego("run", str(wf), "--set", "3.steps=0", "--set", "3.sampler_name=\"nope\"",
               "--set", '4.ckpt_name="missing.safetensors"', "--models", str(demo_models),
               home=tmp_path / "home")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "node 3 (KSampler) input 'steps': Value 0 smaller than min of 1" in res.stderr
    assert "node 3 (KSampler) input 'sampler_name': Value not in list" in res.stderr
    assert "node 4 (CheckpointLoaderSimple) input 'ckpt_name': Value not in list" in res.stderr


def test_run_refuses_bad_files_and_sets(tmp_path, demo_models):
    res = lego("run", str(tmp_path / "none.json"), home=tmp_path)
    assert res.returncode == 2 and "no such file" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = lego("run", str(bad), home=tmp_path)
    assert res.returncode == 2 and "not valid JSON" in res.stderr
    res = lego("run", str(small_example(tmp_path)), "--set", "42.text=x",
               "--models", str(demo_models), home=tmp_path)
    assert res.returncode == 2 and "no node 42" in res.stderr


def test_unsupported_sampler_is_refused_by_name(tmp_path, demo_models):
    wf = small_example(tmp_path)
    res = lego("run", str(wf), "--set", '3.sampler_name="dpm_adaptive"',
               "--models", str(demo_models), home=tmp_path / "home")
    assert res.returncode == 2
    assert "dpm_adaptive" in res.stderr and "not supported" in res.stderr

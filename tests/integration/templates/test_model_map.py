"""`lego run --model-map OLD=NEW`: a downloaded workflow runs on the files this machine has; no
map (or a wrong one) keeps ComfyUI's value_not_in_list naming the missing file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lego_backend.models.demo import DEMO_CHECKPOINT, DEMO_LORA
from lego_backend.run_command import apply_model_map
from node_library import build_registry
from tests.integration.engine.test_cli import REPO, lego

pytestmark = pytest.mark.slow
THEIRS_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"
THEIRS_LORA = "blindbox_v1_mix.safetensors"


def downloaded_workflow(tmp_path: Path) -> Path:
    """The txt2img example as someone else saved it: their checkpoint and LoRA names."""
    prompt = json.loads((REPO / "examples/workflows/txt2img.json").read_text())
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["3"]["inputs"]["steps"] = 2
    prompt["4"]["inputs"]["ckpt_name"] = THEIRS_CKPT
    prompt["10"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "lora_name": THEIRS_LORA,
        "strength_model": 0.5, "strength_clip": 0.5}}
    prompt["3"]["inputs"]["model"] = ["10", 0]
    # a prompt text equal to a model name is not a model input: it must stay as written
    prompt["6"]["inputs"]["text"] = THEIRS_CKPT
    path = tmp_path / "theirs.json"
    path.write_text(json.dumps(prompt))
    return path


def test_map_renames_only_model_combos(tmp_path: Path) -> None:
    prompt = json.loads(downloaded_workflow(tmp_path).read_text())
    n = apply_model_map(prompt, {THEIRS_CKPT: DEMO_CHECKPOINT, THEIRS_LORA: DEMO_LORA},
                        build_registry())
    assert n == 2
    assert prompt["4"]["inputs"]["ckpt_name"] == DEMO_CHECKPOINT
    assert prompt["10"]["inputs"]["lora_name"] == DEMO_LORA
    assert prompt["6"]["inputs"]["text"] == THEIRS_CKPT


def test_lego_run_with_model_map(tmp_path: Path, demo_models: Path) -> None:
    wf = downloaded_workflow(tmp_path)
    common = ("--models", str(demo_models), "--output", str(tmp_path / "out"))
    res = lego("run", str(wf), *common, home=tmp_path / "home")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "input 'ckpt_name': Value not in list" in res.stderr and THEIRS_CKPT in res.stderr
    assert "input 'lora_name': Value not in list" in res.stderr and THEIRS_LORA in res.stderr

    res = lego("run", str(wf), "--model-map", f"{THEIRS_CKPT}={DEMO_CHECKPOINT}", *common,
               home=tmp_path / "home")
    assert res.returncode == 2 and THEIRS_LORA in res.stderr and THEIRS_CKPT not in res.stderr

    res = lego("run", str(wf), "--model-map", f"{THEIRS_CKPT}={DEMO_CHECKPOINT}",
               "--model-map", f"{THEIRS_LORA}={DEMO_LORA}", *common, home=tmp_path / "home")
    assert res.returncode == 0, res.stderr
    assert [Path(p).name for p in res.stdout.split()] == ["ComfyUI_00001_.png"]

    res = lego("run", str(wf), "--model-map", "no-equals-sign", *common, home=tmp_path / "home")
    assert res.returncode == 2 and "expected OLD=NEW" in res.stderr

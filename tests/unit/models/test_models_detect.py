from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import config_dir
from lego_backend.models.detect import detect_checkpoint
from lego_backend.models.loading import load_unet
from lego_backend.models.safetensors_io import save_tensors

T = torch.zeros(1)


def write(path: Path, keys: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> Path:
    save_tensors(keys, path, meta)
    return path


@pytest.mark.parametrize(("keys", "meta", "family", "prediction"), [
    ({"model.diffusion_model.input_blocks.0.0.weight": T,
      "cond_stage_model.transformer.text_model.final_layer_norm.weight": T}, {}, "sd15", "epsilon"),
    ({"model.diffusion_model.input_blocks.0.0.weight": T, "v_pred": T}, {}, "sd15",
     "v_prediction"),
    ({"model.diffusion_model.input_blocks.0.0.weight": T}, {"modelspec.prediction_type": "v"},
     "sd15", "v_prediction"),
    ({"model.diffusion_model.input_blocks.1.1.proj_in.weight": torch.zeros(2, 2)}, {}, "sd2",
     "epsilon"),
    ({"cond_stage_model.model.token_embedding.weight": T}, {}, "sd2", "epsilon"),
    ({"conditioner.embedders.1.model.ln_final.weight": T}, {}, "sdxl", "epsilon"),
    ({"something": T}, {}, "unknown", "epsilon"),
])
def test_detect_from_header(tmp_path: Path, keys, meta, family, prediction) -> None:
    info = detect_checkpoint(write(tmp_path / "m.safetensors", keys, meta))
    assert (info.family, info.prediction_type, info.layout) == (family, prediction, "single_file")
    assert info.has_unet == any(k.startswith("model.diffusion_model.") for k in keys)


def test_unsupported_family_is_refused_by_loaders(tmp_path: Path) -> None:
    path = write(tmp_path / "sd2.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": T,
                                                "cond_stage_model.model.ln_final.weight": T})
    with pytest.raises(ModelLoadError, match="family 'sd2' is not supported"):
        load_unet(path)


def test_diffusers_folder_detection(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / "unet").mkdir(parents=True)
    (folder / "scheduler").mkdir()
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"prediction_type": "v_prediction"}))
    info = detect_checkpoint(folder)
    assert (info.layout, info.family, info.prediction_type) == ("diffusers", "sd15", "v_prediction")
    assert info.has_unet and not info.has_vae


def test_config_dir_is_content_addressed(tmp_path: Path) -> None:
    a = config_dir(tmp_path, {"unet": {"x": 1}})
    assert a == config_dir(tmp_path, {"unet": {"x": 1}})
    assert a != config_dir(tmp_path, {"unet": {"x": 2}})
    assert json.loads((a / "unet" / "config.json").read_text()) == {"x": 1}

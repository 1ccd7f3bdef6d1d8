from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lego_backend.errors import ModelLoadError
from lego_backend.models import loading
from lego_backend.models.lora import load_lora
from lego_backend.models.safetensors_io import load_tensors, read_header, save_tensors

PICKLE_NAMES = ["m.ckpt", "m.pt", "m.pth", "m.bin", "m.pkl", "m.pt2"]


@pytest.fixture
def no_torch_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("name", PICKLE_NAMES)
@pytest.mark.parametrize("loader", [loading.load_unet, loading.load_checkpoint_vae,
                                    loading.load_text_encoder, loading.load_vae,
                                    loading.load_controlnet, load_lora, loading.detect_checkpoint])
def test_pickle_files_are_refused(tmp_path: Path, name: str, loader: object,
                                  no_torch_load: None) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelLoadError, match="pickle-based file; only .safetensors is loaded"):
        loader(path)  # type: ignore[operator]


def test_garbage_safetensors_is_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="not a valid safetensors"):
        read_header(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        read_header(tmp_path / "nope.safetensors")


def test_writer_round_trip_and_determinism(tmp_path: Path) -> None:
    tensors = {"b.w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "a": torch.tensor(2.5, dtype=torch.float16),
               "c": torch.ones(3, dtype=torch.bfloat16),
               "i": torch.tensor([1, 2], dtype=torch.int64), "e": torch.zeros(0)}
    meta = {f"k{i}": str(i) for i in range(20)}
    p1, p2 = tmp_path / "1.safetensors", tmp_path / "2.safetensors"
    save_tensors(tensors, p1, meta)
    save_tensors(dict(reversed(list(tensors.items()))), p2, dict(reversed(list(meta.items()))))
    assert p1.read_bytes() == p2.read_bytes()
    with safe_open(str(p1), framework="pt") as fh:  # the reference reader accepts our files
        assert fh.metadata() == meta
        for k, v in tensors.items():
            assert torch.equal(fh.get_tensor(k), v) and fh.get_tensor(k).dtype == v.dtype
    header = read_header(p1)
    assert header.shapes["b.w"] == (2, 3) and header.dtypes["a"] == "F16"
    assert header.metadata == meta


def test_load_tensors_selects(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"x.a": torch.zeros(1), "x.b": torch.zeros(1), "y.c": torch.zeros(1)}, str(path))
    assert set(load_tensors(path, prefixes=("x.",))) == {"x.a", "x.b"}
    assert set(load_tensors(path, keep=["y.c"])) == {"y.c"}
    assert set(load_tensors(path)) == {"x.a", "x.b", "y.c"}

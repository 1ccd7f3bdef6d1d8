"""ESRGAN upscalers load from safetensors in both key layouts; the service tiles large images."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.errors import ModelLoadError
from lego_backend.models.demo_extra import upscaler_tensors
from lego_backend.models.esrgan import RRDBConfig, RRDBNet, load_upscaler
from lego_backend.models.safetensors_io import save_tensors
from lego_backend.services import upscaler as upscaler_mod
from lego_backend.services.protocol import ServiceCall, ServiceSpec


def _old_layout(net: RRDBNet) -> dict[str, torch.Tensor]:
    """The original ESRGAN numbering (model.0, model.1.sub.N.RDBk.convj.0, model.3, ...)."""
    out = {}
    nb, n_up = net.cfg.nb, net.n_upsamples
    for key, value in net.state_dict().items():
        part, kind = key.rsplit(".", 1)
        if part == "conv_first":
            name = "model.0"
        elif part.startswith("body."):
            _, block, rdb, conv = part.split(".")
            name = f"model.1.sub.{block}.RDB{rdb[-1]}.{conv}.0"
        elif part == "conv_body":
            name = f"model.1.sub.{nb}"
        elif part.startswith("ups."):
            name = f"model.{3 * (int(part.split('.')[1]) + 1)}"
        elif part == "conv_hr":
            name = f"model.{3 * n_up + 2}"
        else:
            name = f"model.{3 * n_up + 4}"
        out[f"{name}.{kind}"] = value
    return out


def test_demo_layout_loads_as_a_4x_upscaler(tmp_path: Path) -> None:
    path = tmp_path / "x4.safetensors"
    save_tensors(upscaler_tensors(0), path)
    model = load_upscaler(path)
    assert model.cfg.scale == 4 and model.cfg.nb == 1 and model.cfg.nf == 8
    assert model(torch.rand(1, 3, 8, 12)).shape == (1, 3, 32, 48)


@pytest.mark.parametrize("scale", [2, 4])
def test_original_esrgan_layout_gives_the_same_network(tmp_path: Path, scale: int) -> None:
    torch.manual_seed(0)
    net = RRDBNet(RRDBConfig(nf=8, gc=4, nb=2, scale=scale)).eval()
    path = tmp_path / "old.safetensors"
    save_tensors(_old_layout(net), path)
    loaded = load_upscaler(path)
    assert loaded.cfg == net.cfg
    x = torch.rand(1, 3, 6, 5)
    assert torch.allclose(loaded(x), net(x))


def test_real_esrgan_x2_unshuffle_is_detected(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = RRDBNet(RRDBConfig(nf=8, gc=4, nb=1, scale=2, unshuffle=2)).eval()
    state = {(f"conv_up{int(k.split('.')[1]) + 1}.{k.split('.')[2]}" if k.startswith("ups.")
              else k): v for k, v in net.state_dict().items()}
    path = tmp_path / "x2.safetensors"
    save_tensors(state, path)
    loaded = load_upscaler(path)
    assert (loaded.cfg.scale, loaded.cfg.unshuffle) == (2, 2)
    assert loaded(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_pickle_and_foreign_files_are_refused(tmp_path: Path) -> None:
    pth = tmp_path / "RealESRGAN_x4plus.pth"
    pth.write_bytes(b"not opened")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_upscaler(pth)
    other = tmp_path / "other.safetensors"
    save_tensors({"weight": torch.zeros(2)}, other)
    with pytest.raises(ModelLoadError, match="ESRGAN"):
        load_upscaler(other)


def test_service_tiles_large_images_like_one_pass(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x4.safetensors"
    save_tensors(upscaler_tensors(0), path)
    store = TensorStore()
    service = upscaler_mod.UpscalerService(ServiceSpec("upscaler", "id", path, source="file"),
                                           store)
    img = torch.rand(1, 20, 28, 3)
    (whole,) = service.run_batch([ServiceCall("upscale", {"image": store.put(img)})])
    monkeypatch.setattr(upscaler_mod, "TILE", 16)
    monkeypatch.setattr(upscaler_mod, "OVERLAP", 4)
    (tiled,) = service.run_batch([ServiceCall("upscale", {"image": store.put(img)})])
    a, b = store.get(whole), store.get(tiled)
    assert a.shape == b.shape == (1, 80, 112, 3)
    # tiles see less context at their borders: close, not equal
    assert (a - b).abs().mean() < 0.05

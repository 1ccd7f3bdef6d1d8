"""Demo files beyond the checkpoint family: an ESRGAN-family upscaler (Real-ESRGAN's BasicSR key
layout, the layout of RealESRGAN_x4plus that the classic templates name) and a textual-inversion
embedding sized for the demo CLIP. Deterministic: same seed => byte-identical files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lego_backend.models.esrgan import RRDBConfig, RRDBNet
from lego_backend.models.safetensors_io import save_tensors

DEMO_UPSCALER = "lego-demo-esrgan-x4.safetensors"
DEMO_EMBEDDING = "lego-demo-embedding.safetensors"
EXTRA_FILES = {
    "upscaler": f"upscale_models/{DEMO_UPSCALER}",
    "embedding": f"embeddings/{DEMO_EMBEDDING}",
}
UPSCALER_CONFIG = RRDBConfig(nf=8, gc=4, nb=1, scale=4)
EMBEDDING_VECTORS = 2  # tokens the embedding stands for
EMBEDDING_STD = 0.5  # about the spread of the demo CLIP's token embeddings, so it matters


def upscaler_tensors(seed: int) -> dict[str, torch.Tensor]:
    """Weights in BasicSR layout (conv_first, body.N.rdbK.convJ, conv_body, conv_upN, conv_hr,
    conv_last). Random but small, so the output stays near mid-grey plus image detail."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 200)
        net = RRDBNet(UPSCALER_CONFIG)
    out: dict[str, torch.Tensor] = {}
    for key, value in net.state_dict().items():
        if key.startswith("ups."):
            index, kind = key.split(".")[1:]
            key = f"conv_up{int(index) + 1}.{kind}"
        out[key] = value.detach().clone()
    out["conv_last.bias"] = torch.full_like(out["conv_last.bias"], 0.5)  # mid-grey, not black
    return out


def embedding_tensors(seed: int, hidden_size: int) -> dict[str, torch.Tensor]:
    """A textual inversion in the A1111 single-file layout ("emb_params": [vectors, dim])."""
    gen = torch.Generator().manual_seed(seed + 300)
    return {"emb_params": torch.randn(EMBEDDING_VECTORS, hidden_size, generator=gen)
            * EMBEDDING_STD}


def write_demo_extras(models_dir: Path, seed: int, hidden_size: int,
                      metadata: dict[str, Any]) -> dict[str, Path]:
    """Write the upscaler and the embedding; returns key -> path for EXTRA_FILES."""
    paths = {key: Path(models_dir) / rel for key, rel in EXTRA_FILES.items()}
    save_tensors(upscaler_tensors(seed), paths["upscaler"],
                 {**metadata, "lego.kind": "upscaler", "lego.scale": str(UPSCALER_CONFIG.scale)})
    save_tensors(embedding_tensors(seed, hidden_size), paths["embedding"],
                 {**metadata, "lego.kind": "embedding"})
    return paths

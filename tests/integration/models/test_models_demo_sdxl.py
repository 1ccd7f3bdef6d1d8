"""The tiny SDXL demo checkpoint: byte-deterministic, in the original SDXL single-file layout,
loaded back through the normal loaders into exactly the modules it was written from, and
encoded by the SDXL text-encoder service the way SDXL conditions its UNet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.models.demo_sdxl import DEMO_SDXL_FILES, build_sdxl_demo, build_sdxl_demo_modules
from lego_backend.models.detect import detect_checkpoint
from lego_backend.models.loading import load_checkpoint_vae, load_text_encoder, load_unet
from lego_backend.models.loading_sdxl import load_sdxl_text_encoders
from lego_backend.models.safetensors_io import read_header
from lego_backend.services.protocol import ServiceCall, ServiceSpec
from lego_backend.services.text_encoder_sdxl import SdxlTextEncoderService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpt(sdxl_models: Path) -> Path:
    return sdxl_models / DEMO_SDXL_FILES["checkpoint_sdxl"]


@pytest.fixture(scope="module")
def modules() -> Any:
    return build_sdxl_demo_modules(seed=0)


@pytest.fixture(scope="module")
def service(ckpt: Path) -> SdxlTextEncoderService:
    return SdxlTextEncoderService(ServiceSpec("text_encoder", "x", ckpt, family="sdxl"),
                                  TensorStore())


def _encode(service: SdxlTextEncoderService, **args: Any) -> tuple[torch.Tensor, torch.Tensor]:
    cond_h, pooled_h = service.run_batch([ServiceCall("encode", {"clip_skip": -1, **args})])[0]
    return service.store.get(cond_h), service.store.get(pooled_h)


def test_build_is_byte_deterministic(tmp_path: Path, ckpt: Path) -> None:
    again = build_sdxl_demo(tmp_path, seed=0)["checkpoint_sdxl"]
    assert again.read_bytes() == ckpt.read_bytes()
    other = build_sdxl_demo(tmp_path / "other", seed=1)["checkpoint_sdxl"]
    assert other.read_bytes() != ckpt.read_bytes()


def test_checkpoint_is_in_the_original_sdxl_layout(ckpt: Path) -> None:
    shapes = read_header(ckpt).shapes
    assert shapes["conditioner.embedders.0.transformer.text_model.embeddings."
                  "token_embedding.weight"] == (49408, 32)
    assert shapes["conditioner.embedders.1.model.token_embedding.weight"] == (49408, 64)
    assert shapes["conditioner.embedders.1.model.positional_embedding"] == (77, 64)
    assert shapes["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"] \
        == (3 * 64, 64)
    assert shapes["conditioner.embedders.1.model.text_projection"] == (64, 64)
    # pooled (64) + 6 size numbers x 256 features -> time-embedding width
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (128, 64 + 6 * 256)
    assert shapes["model.diffusion_model.input_blocks.3.1.transformer_blocks.1.attn2.to_k."
                  "weight"] == (64, 96)  # depth 2, context = 32 + 64
    assert "first_stage_model.decoder.conv_out.weight" in shapes
    assert not any(k.startswith("cond_stage_model.") for k in shapes)
    info = detect_checkpoint(ckpt)
    assert (info.family, info.has_unet, info.has_vae, info.has_text_encoder) == \
        ("sdxl", True, True, True)


def test_loads_back_into_the_same_modules(ckpt: Path, modules: Any, cache_dir: Path,
                                          same_weights: Any) -> None:
    unet = load_unet(ckpt, cache_dir=cache_dir)
    assert unet.config.addition_embed_type == "text_time"
    same_weights(modules.unet, unet)
    vae = load_checkpoint_vae(ckpt, cache_dir=cache_dir)
    assert vae.config.scaling_factor == pytest.approx(0.13025)
    same_weights(modules.vae, vae)
    encoders = load_sdxl_text_encoders(ckpt, cache_dir=cache_dir)
    assert type(encoders.clip_g).__name__ == "CLIPTextModelWithProjection"
    assert encoders.clip_g.config.hidden_act == "gelu"
    assert encoders.clip_l.config.hidden_act == "quick_gelu"
    same_weights(modules.clip_l, encoders.clip_l)
    same_weights(modules.clip_g, encoders.clip_g)


def test_sd1_text_encoder_loader_refuses_an_sdxl_file(ckpt: Path, cache_dir: Path) -> None:
    from lego_backend.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no CLIP text encoder"):
        load_text_encoder(ckpt, cache_dir=cache_dir)


def test_encode_is_both_penultimate_layers_side_by_side_plus_bigg_pooled(
        service: SdxlTextEncoderService, modules: Any) -> None:
    cond, pooled = _encode(service, text="a red circle")
    assert cond.shape == (1, 77, 96) and pooled.shape == (1, 64)
    tok = service.encoders.tokenizer
    ids = tok("a red circle", add_special_tokens=False)["input_ids"]
    bos, eos = tok.bos_token_id, tok.eos_token_id
    row_l = torch.tensor([[bos, *ids, eos] + [eos] * (75 - len(ids))])
    row_g = torch.tensor([[bos, *ids, eos] + [0] * (75 - len(ids))])  # bigG pads with 0
    with torch.no_grad():
        out_l = modules.clip_l(input_ids=row_l, output_hidden_states=True)
        out_g = modules.clip_g(input_ids=row_g, output_hidden_states=True)
    torch.testing.assert_close(cond[..., :32], out_l.hidden_states[-2])
    torch.testing.assert_close(cond[..., 32:], out_g.hidden_states[-2])
    torch.testing.assert_close(pooled, out_g.text_embeds)
    # clip_skip -3 reads an earlier layer of both encoders; the pooled output stays the last's
    cond3, pooled3 = _encode(service, text="a red circle", clip_skip=-3)
    torch.testing.assert_close(cond3[..., 32:], out_g.hidden_states[-3])
    torch.testing.assert_close(pooled3, pooled)


def test_long_prompts_and_text_l_of_another_length(service: SdxlTextEncoderService) -> None:
    long_text = " ".join(["circle"] * 100)  # > 75 tokens: two chunks
    cond, pooled = _encode(service, text=long_text)
    assert cond.shape == (1, 154, 96)
    short_cond, _ = _encode(service, text="circle")
    # text_l shorter than text_g: CLIP-L's second chunk is the empty prompt's
    mixed, mixed_pooled = _encode(service, text=long_text, text_l="circle")
    empty, _ = _encode(service, text="")
    assert mixed.shape == (1, 154, 96)
    torch.testing.assert_close(mixed[:, :77, :32], short_cond[..., :32])
    torch.testing.assert_close(mixed[:, 77:, :32], empty[..., :32])
    torch.testing.assert_close(mixed[..., 32:], cond[..., 32:])
    torch.testing.assert_close(mixed_pooled, pooled)  # pooled comes from bigG (text_g)


def test_sdxl_embedding_uses_the_vector_of_each_width(service: SdxlTextEncoderService,
                                                      tmp_path: Path) -> None:
    from lego_backend.models.safetensors_io import save_tensors

    gen = torch.Generator().manual_seed(3)
    path = tmp_path / "pair.safetensors"
    save_tensors({"clip_l": torch.randn(2, 32, generator=gen),
                  "clip_g": torch.randn(2, 64, generator=gen)}, path, {})
    with_emb, _ = _encode(service, text="a embedding:pair circle",
                          embeddings={"pair": str(path)})
    plain, _ = _encode(service, text="a circle")
    missing, _ = _encode(service, text="a embedding:nothere circle")
    assert not torch.allclose(with_emb, plain)
    torch.testing.assert_close(missing, plain)  # unknown names are dropped, as in ComfyUI

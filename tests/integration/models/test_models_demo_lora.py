from __future__ import annotations

from pathlib import Path

import torch

from lego_backend.models.demo_lora import demo_lora_deltas
from lego_backend.models.loading import (
    load_checkpoint_vae,
    load_lora,
    load_text_encoder,
    load_unet,
    merge_lora,
)


def test_both_layouts_give_the_same_normalised_lora(demo_paths: dict[str, Path],
                                                    demo_modules) -> None:
    kohya = load_lora(demo_paths["lora"])
    peft = load_lora(demo_paths["lora_peft"])
    assert (kohya.source_format, peft.source_format) == ("kohya", "peft")
    written = demo_lora_deltas(demo_modules.unet, demo_modules.text_encoder, seed=0)
    for comp in ("unet", "text_encoder"):
        assert kohya.for_component(comp).keys() == peft.for_component(comp).keys()
        assert kohya.for_component(comp).keys() == written[comp].keys()
        for path, d in kohya.for_component(comp).items():
            other = peft.for_component(comp)[path]
            assert d.scale == other.scale == written[comp][path].scale == 0.5
            assert torch.equal(d.delta(), other.delta())
            assert torch.equal(d.delta(), written[comp][path].delta())
    assert any(p.endswith("proj_in") for p in kohya.for_component("unet"))  # 1x1 conv target
    assert kohya.for_component("unet")["down_blocks.0.resnets.0.conv1"].down.ndim == 4


def test_merge_changes_weights_by_the_expected_amount(demo_paths: dict[str, Path],
                                                      cache_dir: Path) -> None:
    unet = load_unet(demo_paths["checkpoint"], cache_dir=cache_dir)
    te, _ = load_text_encoder(demo_paths["checkpoint"], cache_dir=cache_dir)
    lora = load_lora(demo_paths["lora"])
    before_u = {k: v.clone() for k, v in unet.state_dict().items()}
    before_t = {k: v.clone() for k, v in te.state_dict().items()}
    merge_lora(unet, lora.for_component("unet"), strength=0.8)
    merge_lora(te, lora.for_component("text_encoder"), strength=0.8)
    for model, before, deltas in ((unet, before_u, lora.for_component("unet")),
                                  (te, before_t, lora.for_component("text_encoder"))):
        after = model.state_dict()
        changed = {k for k in after if not torch.equal(after[k], before[k])}
        assert changed == {f"{p}.weight" for p in deltas}  # exactly the targets, no biases
        for path, d in deltas.items():
            key = f"{path}.weight"
            expected = before[key] + 0.8 * d.delta().reshape(before[key].shape)
            assert torch.allclose(after[key], expected, atol=1e-5), key
            # the update is as large as the weight itself: a visible style change
            ratio = (after[key] - before[key]).std() / before[key].std()
            assert 0.3 < ratio < 3.0, (key, float(ratio))
    merge_lora(unet, lora.for_component("unet"), strength=-0.8)  # unmerge restores
    for key, value in unet.state_dict().items():
        assert torch.allclose(value, before_u[key], atol=1e-5), key


def _render(unet, te, tok, vae) -> torch.Tensor:
    """One denoising step from fixed noise to a 64px image: enough to see a LoRA."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 8, 8, generator=g)
    ids = tok("a red circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    a = torch.tensor(0.3)  # alpha_bar at a mid timestep
    with torch.inference_mode():
        ctx = te(ids).last_hidden_state
        eps = unet(noise, 500, ctx).sample
        x0 = (noise - (1 - a).sqrt() * eps) / a.sqrt()
        image = vae.decode(x0 / vae.config.scaling_factor).sample
    return ((image + 1) / 2).clamp(0, 1)


def test_lora_visibly_changes_a_64px_image(demo_paths: dict[str, Path], cache_dir: Path) -> None:
    unet = load_unet(demo_paths["checkpoint"], cache_dir=cache_dir)
    te, tok = load_text_encoder(demo_paths["checkpoint"], cache_dir=cache_dir)
    vae = load_checkpoint_vae(demo_paths["checkpoint"], cache_dir=cache_dir)
    base = _render(unet, te, tok, vae)
    assert base.shape == (1, 3, 64, 64)
    lora = load_lora(demo_paths["lora_peft"])
    merge_lora(unet, lora.for_component("unet"), 1.0)
    merge_lora(te, lora.for_component("text_encoder"), 1.0)
    styled = _render(unet, te, tok, vae)
    assert (styled - base).abs().mean() > 0.02  # > 5/255 per pixel on average

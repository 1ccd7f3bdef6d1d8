"""direct_attention: the same UNet output bit for bit, without diffusers' per-call signature
inspection; extra keyword arguments still take diffusers' own path."""
from __future__ import annotations

import copy

import diffusers.models.attention_processor as ap
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from lego_backend.services.fast_modules import direct_attention


def _unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=32).eval()


def test_direct_attention_gives_identical_outputs_and_skips_the_inspection(monkeypatch):
    plain = _unet()
    fast = copy.deepcopy(plain)
    assert direct_attention(fast) == sum(type(m) is Attention for m in plain.modules()) > 0
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 7, 32, generator=g)
    t = torch.tensor([10.0, 500.0, 999.0])
    with torch.inference_mode():
        want = plain(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        calls = []
        real = ap.inspect.signature
        monkeypatch.setattr(ap.inspect, "signature", lambda f: calls.append(f) or real(f))
        got = fast(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
    assert torch.equal(got, want)
    assert calls == []  # the per-call signature inspection is gone


def test_extra_attention_kwargs_still_reach_diffusers_forward():
    fast = _unet()
    direct_attention(fast)
    attn = next(m for m in fast.modules() if isinstance(m, Attention))
    h = torch.randn(2, 16, attn.query_dim)
    with torch.inference_mode():
        plain = attn(h)
        # an unknown kwarg is dropped by diffusers' forward (with a warning), not passed on
        assert torch.equal(attn(h, not_a_processor_arg=1.0), plain)


def test_nothing_to_switch_on_none_or_a_model_without_attention():
    assert direct_attention(None) == 0
    assert direct_attention(torch.nn.Linear(2, 2)) == 0

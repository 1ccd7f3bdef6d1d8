from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lego_backend.errors import ModelLoadError
from lego_backend.models.lora import LoraDelta, load_lora, merge_lora
from lego_backend.models.lora_names import underscore_to_dotted
from lego_backend.models.safetensors_io import save_tensors

R = 2


def lowrank(out_f: int, in_f: int, seed: int, kernel: tuple[int, ...] = ()) -> tuple:
    g = torch.Generator().manual_seed(seed)
    down = torch.randn((R, in_f, *kernel), generator=g)
    up = torch.randn((out_f, R, *(1 for _ in kernel)), generator=g)
    return down, up


@pytest.mark.parametrize(("name", "dotted"), [
    ("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    ("up_blocks_1_attentions_2_transformer_blocks_0_attn2_to_out_0",
     "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0"),
    ("mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj",
     "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj"),
    ("down_blocks_1_resnets_0_conv_shortcut", "down_blocks.1.resnets.0.conv_shortcut"),
    ("text_model_encoder_layers_11_self_attn_out_proj",
     "text_model.encoder.layers.11.self_attn.out_proj"),
    ("text_model_encoder_layers_0_mlp_fc1", "text_model.encoder.layers.0.mlp.fc1"),
    ("input_blocks_4_0_emb_layers_1", "input_blocks.4.0.emb_layers.1"),
    ("out_2", "out.2"),
])
def test_underscore_names(name: str, dotted: str) -> None:
    assert underscore_to_dotted(name) == dotted


def test_kohya_and_peft_normalise_identically(tmp_path: Path) -> None:
    q_down, q_up = lowrank(8, 8, 1)
    c_down, c_up = lowrank(8, 4, 2, (3, 3))
    t_down, t_up = lowrank(6, 6, 3)
    q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    kohya = {
        f"{q}.lora_down.weight": q_down, f"{q}.lora_up.weight": q_up,
        f"{q}.alpha": torch.tensor(1.0),
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": c_down,
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": c_up,
        "lora_unet_down_blocks_0_resnets_0_conv1.alpha": torch.tensor(1.0),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": t_down,
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": t_up,
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha": torch.tensor(1.0),
    }
    peft = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": q_down,
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": q_up,
        "unet.down_blocks.0.resnets.0.conv1.lora.down.weight": c_down,
        "unet.down_blocks.0.resnets.0.conv1.lora.up.weight": c_up,
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight":
            t_down,
        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight":
            t_up,
    }
    meta = {"lora_adapter_metadata": json.dumps({"unet.lora_alpha": 1.0, "unet.r": R,
                                                 "text_encoder.lora_alpha": 1.0})}
    save_tensors(kohya, tmp_path / "k.safetensors")
    save_tensors(peft, tmp_path / "p.safetensors", meta)
    k, p = load_lora(tmp_path / "k.safetensors"), load_lora(tmp_path / "p.safetensors")
    assert (k.source_format, p.source_format) == ("kohya", "peft")
    assert set(k.components) == set(p.components) == {"unet", "text_encoder"}
    assert set(k.for_component("text_encoder")) == {"encoder.layers.0.self_attn.q_proj"}
    for comp in k.components:
        assert k.components[comp].keys() == p.components[comp].keys()
        for path, d in k.components[comp].items():
            assert d.scale == p.components[comp][path].scale == 0.5
            assert torch.equal(d.delta(), p.components[comp][path].delta())


def test_ldm_spelled_kohya_and_processor_keys(tmp_path: Path) -> None:
    down, up = lowrank(4, 4, 4)
    attn = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
    save_tensors({f"{attn}.lora_down.weight": down, f"{attn}.lora_up.weight": up,
                  "lora_unet_output_blocks_5_0_in_layers_2.lora_down.weight": down,
                  "lora_unet_output_blocks_5_0_in_layers_2.lora_up.weight": up},
                 tmp_path / "ldm.safetensors")
    got = load_lora(tmp_path / "ldm.safetensors").for_component("unet")
    assert set(got) == {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                        "up_blocks.1.resnets.2.conv1"}
    proc = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora"
    save_tensors({f"{proc}.down.weight": down, f"{proc}.up.weight": up},
                 tmp_path / "proc.safetensors")
    got = load_lora(tmp_path / "proc.safetensors").for_component("unet")
    assert set(got) == {"mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0"}
    assert got["mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0"].scale == 1.0


def test_unknown_and_incomplete_keys(tmp_path: Path) -> None:
    down, up = lowrank(4, 4, 5)
    save_tensors({"lora_unet_x.lora_down.weight": down, "lora_unet_x.lora_up.weight": up,
                  "something.else": down, "lora_unet_y.hada_w1_a": down},
                 tmp_path / "u.safetensors")
    with pytest.raises(ModelLoadError, match=r"2 LoRA keys not understood.*hada_w1_a"):
        load_lora(tmp_path / "u.safetensors")
    save_tensors({"unet.a.lora_A.weight": down}, tmp_path / "half.safetensors")
    with pytest.raises(ModelLoadError, match="lacks its up matrix"):
        load_lora(tmp_path / "half.safetensors")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.pw = nn.Conv2d(4, 3, 1)  # 1x1 conv, e.g. SD1.5's proj_in
        self.conv = nn.Conv2d(4, 3, 3)


def test_merge_adds_scaled_low_rank_update() -> None:
    torch.manual_seed(0)
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lin_d, lin_u = lowrank(3, 4, 6)
    conv_d, conv_u = lowrank(3, 4, 7, (3, 3))
    weights = {"lin": LoraDelta(lin_d, lin_u, alpha=1.0),  # scale 0.5
               "pw": LoraDelta(lin_d, lin_u, alpha=4.0),  # linear LoRA on a 1x1 conv, scale 2
               "conv": LoraDelta(conv_d, conv_u, alpha=2.0)}
    merge_lora(model, weights, strength=0.7)
    expected_lin = before["lin.weight"] + 0.7 * 0.5 * lin_u @ lin_d
    assert torch.allclose(model.lin.weight, expected_lin, atol=1e-6)
    assert torch.allclose(model.pw.weight, before["pw.weight"] +
                          (0.7 * 2.0 * lin_u @ lin_d)[:, :, None, None], atol=1e-6)
    conv_delta = (conv_u.reshape(3, R) @ conv_d.reshape(R, -1)).reshape(3, 4, 3, 3)
    assert torch.allclose(model.conv.weight, before["conv.weight"] + 0.7 * conv_delta, atol=1e-5)
    assert torch.equal(model.lin.bias, before["lin.bias"])


def test_merge_missing_target_changes_nothing() -> None:
    model = Tiny()
    before = model.lin.weight.clone()
    d, u = lowrank(3, 4, 8)
    with pytest.raises(ModelLoadError, match="lacks"):
        merge_lora(model, {"lin": LoraDelta(d, u, 2.0), "nope.to_q": LoraDelta(d, u, 2.0)}, 1.0)
    assert torch.equal(model.lin.weight, before)
    with pytest.raises(ModelLoadError, match="shape"):
        merge_lora(model, {"lin": LoraDelta(*lowrank(5, 4, 9), 2.0)}, 1.0)

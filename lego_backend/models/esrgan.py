"""ESRGAN-family upscalers (RRDBNet): the architecture and loading from safetensors.

Two key layouts exist in the wild and both load here:
- the original ESRGAN layout (`model.0.weight`, `model.1.sub.N.RDB1.conv1.0.weight`, ...), which
  most community upscalers (4x-UltraSharp, ...) use;
- the BasicSR / Real-ESRGAN layout (`conv_first.weight`, `body.N.rdb1.conv1.weight`,
  `conv_up1.weight`, ...). Real-ESRGAN x2/x1 models pixel-unshuffle their input first, which
  shows as 4x / 16x the colour channels on the first conv.
The scale, width, growth and depth are read from the tensor shapes, so no config is needed.
(spandrel detects the same layouts; it needs torchvision, which has no wheel matching the CPU
torch build here, so the architecture is written out in this module.)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lego_backend.errors import ModelLoadError
from lego_backend.models.safetensors_io import load_tensors

Tensors = dict[str, torch.Tensor]


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing every earlier output; residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@dataclass(frozen=True)
class RRDBConfig:
    in_nc: int = 3  # colour channels of the image
    out_nc: int = 3
    nf: int = 64  # feature width
    gc: int = 32  # growth channels of a dense block
    nb: int = 23  # RRDB blocks
    scale: int = 4  # overall upscale factor
    unshuffle: int = 1  # input pixel-unshuffle factor (Real-ESRGAN x2: 2, x1: 4)


class RRDBNet(nn.Module):
    """State-dict keys follow the BasicSR layout; `load_upscaler` converts the old layout."""

    def __init__(self, cfg: RRDBConfig):
        super().__init__()
        self.cfg = cfg
        u = cfg.unshuffle
        self.conv_first = nn.Conv2d(cfg.in_nc * u * u, cfg.nf, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(cfg.nf, cfg.gc) for _ in range(cfg.nb)))
        self.conv_body = nn.Conv2d(cfg.nf, cfg.nf, 3, 1, 1)
        self.ups = nn.ModuleList(nn.Conv2d(cfg.nf, cfg.nf, 3, 1, 1)
                                 for _ in range(self.n_upsamples))
        self.conv_hr = nn.Conv2d(cfg.nf, cfg.nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(cfg.nf, cfg.out_nc, 3, 1, 1)

    @property
    def n_upsamples(self) -> int:
        # each upsample doubles; the unshuffle first divides the size by its factor
        return round(math.log2(self.cfg.scale * self.cfg.unshuffle))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] in 0..1 -> [B, C, H*scale, W*scale] (not clamped)."""
        if self.cfg.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.cfg.unshuffle)
        fea = self.conv_first(x)
        fea = fea + self.conv_body(self.body(fea))
        for conv in self.ups:
            fea = F.leaky_relu(conv(F.interpolate(fea, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(fea), 0.2))


_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_CONV = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_NEW_UP = re.compile(r"^conv_up(\d+)\.(weight|bias)$")


def _from_old_layout(state: Tensors) -> Tensors:
    """model.0 = conv_first; model.1.sub.N = RRDBs (the last index = conv_body); then one conv
    per upsample at model.3, 6, ..., and the HR and last convs at the two highest indices."""
    out: Tensors = {}
    subs = sorted({int(m.group(1)) for k in state if (m := _OLD_RDB.match(k))})
    trunk = len(subs)
    tail = sorted({int(m.group(1)) for k in state if (m := _OLD_CONV.match(k))} - {0})
    if len(tail) < 2:
        raise ModelLoadError("not an ESRGAN state dict (no HR / last convs)")
    names = {0: "conv_first", tail[-2]: "conv_hr", tail[-1]: "conv_last"}
    names.update({idx: f"ups.{i}" for i, idx in enumerate(tail[:-2])})
    for key, value in state.items():
        if m := _OLD_RDB.match(key):
            block, rdb, conv, kind = m.groups()
            out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif key.startswith(f"model.1.sub.{trunk}."):
            out["conv_body." + key.rsplit(".", 1)[1]] = value
        elif (m := _OLD_CONV.match(key)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
        else:
            raise ModelLoadError(f"unexpected ESRGAN key {key!r}")
    return out


def _from_basicsr_layout(state: Tensors) -> Tensors:
    out: Tensors = {}
    for key, value in state.items():
        if m := _NEW_UP.match(key):
            key = f"ups.{int(m.group(1)) - 1}.{m.group(2)}"
        elif key.startswith(("params_ema.", "params.")):
            raise ModelLoadError("nested Real-ESRGAN state dict: re-save its params_ema entry")
        out[key] = value
    return out


def to_internal(state: Tensors) -> Tensors:
    """Either known layout -> this module's keys."""
    if "model.0.weight" in state:
        return _from_old_layout(state)
    if "conv_first.weight" in state:
        return _from_basicsr_layout(state)
    raise ModelLoadError("not an ESRGAN/RRDBNet upscaler (no model.0 or conv_first weights)")


def config_from_state(state: Tensors) -> RRDBConfig:
    """Read the architecture from internal-layout tensor shapes."""
    first, last = state["conv_first.weight"], state["conv_last.weight"]
    out_nc, nf = int(last.shape[0]), int(first.shape[0])
    in_ch = int(first.shape[1])
    unshuffle = {1: 1, 4: 2, 16: 4}.get(in_ch // out_nc if in_ch % out_nc == 0 else 0)
    if unshuffle is None:
        raise ModelLoadError(f"ESRGAN with {in_ch} input and {out_nc} output channels")
    nb = len({k.split(".")[1] for k in state if k.startswith("body.")})
    ups = len({k.split(".")[1] for k in state if k.startswith("ups.")})
    gc = int(state["body.0.rdb1.conv1.weight"].shape[0]) if nb else 32
    scale = 2 ** ups // unshuffle
    return RRDBConfig(in_nc=out_nc, out_nc=out_nc, nf=nf, gc=gc, nb=nb, scale=max(1, scale),
                      unshuffle=unshuffle)


def load_upscaler(path: Path) -> RRDBNet:
    """An fp32 eval-mode RRDBNet from a .safetensors file (pickle files are refused)."""
    state = to_internal(load_tensors(Path(path)))
    model = RRDBNet(config_from_state(state))
    expected = set(model.state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ModelLoadError(f"{Path(path).name}: ESRGAN keys do not match "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval().requires_grad_(False)

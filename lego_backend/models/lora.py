"""LoRA files, normalised: per component ("unet", "text_encoder") a dict from diffusers module
path to (down, up, alpha), whatever layout the file used; and merging them into weights.

Accepted layouts (safetensors only):
  kohya        lora_unet_<path_with_underscores>.lora_down.weight / .lora_up.weight / .alpha
               lora_te_<path>...  (UNet paths in diffusers or LDM spelling: input_blocks_1_1_...)
  diffusers/   unet.<path>.lora_A.weight / .lora_B.weight      (peft, alpha in the file's
  peft         text_encoder.<path>...                           `lora_adapter_metadata`)
               unet.<path>.lora.down.weight / .lora.up.weight  (older diffusers)
               unet.<path>.processor.to_q_lora.down.weight, ...lora_linear_layer.down.weight
A missing alpha means alpha = rank (scale 1), as in peft and kohya.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.lora_names import text_module_path, underscore_to_dotted, unet_module_path
from lego_backend.models.safetensors_io import load_tensors, read_header

COMPONENTS = ("unet", "text_encoder")
_KOHYA_PREFIX = {"lora_unet_": "unet", "lora_te_": "text_encoder"}
# (suffix, role) of the dotted layouts; role is "down", "up" or "alpha".
_DOTTED_SUFFIXES = (
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".alpha", "alpha"),
)
_PROCESSOR = re.compile(r"^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


@dataclass(frozen=True)
class LoraDelta:
    """One low-rank update W += scale * up @ down, scale = alpha / rank."""

    down: torch.Tensor  # (rank, in) or conv (rank, in, kh, kw)
    up: torch.Tensor  # (out, rank) or conv (out, rank, 1, 1)
    alpha: float  # kohya/peft alpha; alpha == rank means scale 1

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self) -> torch.Tensor:
        """scale * up @ down, shaped (out, in) or (out, in, kh, kw); float32."""
        down = self.down.float().reshape(self.rank, -1)
        up = self.up.float().reshape(self.up.shape[0], self.rank)
        d = (up @ down) * self.scale
        if self.down.ndim == 4:
            return d.reshape(self.up.shape[0], *self.down.shape[1:])
        return d


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA file, normalised. `components["unet"]["down_blocks.0...attn1.to_q"]`."""

    components: dict[str, dict[str, LoraDelta]] = field(default_factory=dict)
    source_format: str = "kohya"  # "kohya" or "peft" (diffusers/peft dotted keys)

    def for_component(self, name: str) -> dict[str, LoraDelta]:
        return self.components.get(name, {})


def _split_kohya(key: str, unet_lpb: int) -> tuple[str, str, str] | None:
    for prefix, comp in _KOHYA_PREFIX.items():
        if not key.startswith(prefix):
            continue
        name, _, rest = key[len(prefix):].partition(".")
        role = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}.get(rest)
        if role is None:
            return None
        dotted = underscore_to_dotted(name)
        path = unet_module_path(dotted, unet_lpb) if comp == "unet" else text_module_path(dotted)
        return comp, path, role
    return None


def _split_dotted(key: str) -> tuple[str, str, str] | None:
    comp, _, rest = key.partition(".")
    if comp not in COMPONENTS:
        return None
    m = _PROCESSOR.match(rest)
    if m:
        target = m.group(2) + (".0" if m.group(2) == "to_out" else "")
        return comp, f"{m.group(1)}.{target}", m.group(3)
    for suffix, role in _DOTTED_SUFFIXES:
        if rest.endswith(suffix):
            path = rest[: -len(suffix)]
            return comp, text_module_path(path) if comp == "text_encoder" else path, role
    return None


def _peft_alphas(metadata: dict[str, str]) -> dict[str, tuple[float | None, dict[str, float]]]:
    """Per component: (lora_alpha, alpha_pattern) from diffusers' `lora_adapter_metadata`."""
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ModelLoadError(f"unreadable lora_adapter_metadata: {exc}") from exc
    out = {}
    for comp in COMPONENTS:
        alpha = meta.get(f"{comp}.lora_alpha")
        pattern = meta.get(f"{comp}.alpha_pattern") or {}
        out[comp] = (float(alpha) if alpha is not None else None,
                     {str(k): float(v) for k, v in pattern.items()})
    return out


def _pattern_alpha(path: str, pattern: dict[str, float]) -> float | None:
    for key, value in pattern.items():  # peft: a pattern matches the end of the module path
        if re.fullmatch(rf"(.*\.)?{key}", path):
            return value
    return None


def load_lora(path: Path, *, unet_layers_per_block: int = 2) -> LoraWeights:
    """Read a kohya or diffusers/peft LoRA. `unet_layers_per_block` is only used to map
    LDM-spelled kohya UNet names (input_blocks_<i>_...) and defaults to SD1.5's 2."""
    path = Path(path)
    header = read_header(path)
    tensors = load_tensors(path)
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    kinds: set[str] = set()
    for key, tensor in tensors.items():
        hit = _split_kohya(key, unet_layers_per_block)
        kind = "kohya"
        if hit is None:
            hit, kind = _split_dotted(key), "peft"
        if hit is None:
            unknown.append(key)
            continue
        kinds.add(kind)
        comp, module, role = hit
        parts.setdefault((comp, module), {})[role] = tensor
    if unknown:
        raise ModelLoadError(f"{path.name}: {len(unknown)} LoRA keys not understood, e.g. "
                             f"{sorted(unknown)[:5]}")
    if not parts:
        raise ModelLoadError(f"{path.name} holds no LoRA weights")
    alphas = _peft_alphas(header.metadata)
    components: dict[str, dict[str, LoraDelta]] = {}
    for (comp, module), roles in sorted(parts.items()):
        if "down" not in roles or "up" not in roles:
            raise ModelLoadError(f"{path.name}: {comp} module {module} lacks its "
                                 f"{'up' if 'down' in roles else 'down'} matrix")
        rank = int(roles["down"].shape[0])
        alpha: float | None = float(roles["alpha"].item()) if "alpha" in roles else None
        if alpha is None and comp in alphas:
            default, pattern = alphas[comp]
            alpha = _pattern_alpha(module, pattern) or default
        components.setdefault(comp, {})[module] = LoraDelta(
            down=roles["down"], up=roles["up"], alpha=alpha if alpha is not None else rank)
    return LoraWeights(components=components, source_format="kohya" if kinds == {"kohya"}
                       else "peft")


def _target(module: torch.nn.Module, path: str) -> torch.nn.Module:
    for candidate in (path, "text_model." + path, path.removeprefix("text_model.")):
        try:
            return module.get_submodule(candidate)
        except AttributeError:
            continue
    raise ModelLoadError(f"LoRA targets module '{path}', which {type(module).__name__} lacks")


def merge_lora(module: torch.nn.Module, weights: dict[str, LoraDelta], strength: float) -> None:
    """W += strength * alpha/rank * up @ down for every target, in place. All targets are
    checked before any weight changes, so a bad LoRA leaves the module untouched."""
    plan = []
    for path, lora in weights.items():
        target = _target(module, path)
        weight = getattr(target, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise ModelLoadError(f"LoRA target '{path}' has no weight")
        delta = lora.delta()
        if delta.numel() != weight.numel():
            raise ModelLoadError(f"LoRA for '{path}' has shape {tuple(delta.shape)}, the weight "
                                 f"{tuple(weight.shape)}")
        plan.append((weight, delta.reshape(weight.shape)))  # 1x1 conv <-> linear reshape
    with torch.no_grad():
        for weight, delta in plan:
            weight.add_(delta.to(device=weight.device, dtype=weight.dtype), alpha=strength)

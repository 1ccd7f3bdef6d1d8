"""Per-call Python overhead removed from loaded diffusers models, without changing their math.

diffusers' `Attention.forward` rebuilds `inspect.signature(processor.__call__)` on every call, to
warn about extra keyword arguments. The services never pass any, and at the small batches that
continuous batching runs on CPU that inspection costs ~7% of a UNet forward (every attention
layer of every step). `direct_attention` switches a loaded model's attention layers to a subclass
that calls the processor directly when there are no extra keyword arguments and defers to
diffusers' own forward when there are."""
from __future__ import annotations

from functools import cache
from typing import Any

import torch


@cache
def _classes() -> tuple[type, type]:
    """(diffusers' Attention, our subclass); diffusers is imported on first use only."""
    from diffusers.models.attention_processor import Attention

    class DirectAttention(Attention):
        def forward(self, hidden_states: torch.Tensor,
                    encoder_hidden_states: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None,
                    **cross_attention_kwargs: Any) -> torch.Tensor:
            if cross_attention_kwargs:
                return super().forward(hidden_states, encoder_hidden_states, attention_mask,
                                       **cross_attention_kwargs)
            return self.processor(self, hidden_states,
                                  encoder_hidden_states=encoder_hidden_states,
                                  attention_mask=attention_mask)

    return Attention, DirectAttention


def direct_attention(model: torch.nn.Module | None) -> int:
    """Switch `model`'s diffusers Attention layers to the direct subclass; returns how many.
    Subclasses of Attention are left alone: their forward may do more."""
    if model is None:
        return 0
    attention, direct = _classes()
    count = 0
    for module in model.modules():
        if type(module) is attention:
            module.__class__ = direct
            count += 1
    return count

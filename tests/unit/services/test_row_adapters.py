"""Run-time LoRAs per batch row (services/adapters.py): each row gets exactly its own request's
LoRAs (a merged-weights copy of the model is the reference), rows without any get the base
model's output bit for bit, and the model is left unhooked afterwards."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lego_backend.models.lora import LoraDelta, LoraWeights, merge_lora
from lego_backend.services.adapters import row_adapters


class _Tiny(nn.Module):
    """A conv and two linears: the layer kinds LoRAs target in a UNet and a text encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.proj = nn.Linear(8, 6)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).mean(dim=(2, 3))
        return self.head(torch.tanh(self.proj(h)))


def _lora(seed: int, rank: int, alpha: float, targets: tuple[str, ...]) -> LoraWeights:
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv": ((rank, 3, 3, 3), (8, rank, 1, 1)), "proj": ((rank, 8), (6, rank)),
              "head": ((rank, 6), (5, rank))}
    deltas = {path: LoraDelta(torch.randn(shapes[path][0], generator=g) * 0.3,
                              torch.randn(shapes[path][1], generator=g) * 0.3, alpha)
              for path in targets}
    return LoraWeights({"unet": deltas})


def _reference(model: nn.Module, x: torch.Tensor, stack: list[tuple[LoraWeights, float]]
               ) -> torch.Tensor:
    merged = copy.deepcopy(model)
    for weights, strength in stack:
        merge_lora(merged, weights.for_component("unet"), strength)
    with torch.no_grad():
        return merged(x)


@pytest.fixture()
def setup() -> tuple[nn.Module, torch.Tensor, LoraWeights, LoraWeights]:
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(9, 3, 6, 6)
    a = _lora(1, rank=2, alpha=1.0, targets=("conv", "proj", "head"))
    b = _lora(2, rank=3, alpha=3.0, targets=("proj",))
    return model, x, a, b


def test_each_row_gets_its_own_loras_and_plain_rows_stay_exact(setup):
    model, x, a, b = setup
    with torch.no_grad():
        base = model(x)
    # rows 0-1: A; 2-3: nothing; 4-5: B at 0.5; 6-7: A again (not adjacent to 0-1); 8: A+B
    rows = [((0, 2), [(a, 1.0)]), ((4, 6), [(b, 0.5)]), ((6, 8), [(a, 1.0)]),
            ((8, 9), [(a, 0.7), (b, -1.0)])]
    with torch.no_grad(), row_adapters(model, "unet", rows):
        out = model(x)
    assert torch.equal(out[2:4], base[2:4])  # no LoRA: the base model's output exactly
    want = {(0, 2): [(a, 1.0)], (4, 6): [(b, 0.5)], (6, 8): [(a, 1.0)],
            (8, 9): [(a, 0.7), (b, -1.0)]}
    for (start, stop), stack in want.items():
        ref = _reference(model, x, stack)[start:stop]
        assert torch.allclose(out[start:stop], ref, atol=1e-5), (start, stop)
        assert not torch.allclose(out[start:stop], base[start:stop], atol=1e-3)
    with torch.no_grad():  # hooks are gone: the model is the base model again
        assert torch.equal(model(x), base)


def test_the_same_stack_on_every_row_matches_the_merged_model(setup):
    model, x, a, b = setup
    stack = [(a, 0.8), (b, 1.2)]
    with torch.no_grad(), row_adapters(model, "unet", [((0, 9), stack)]):
        out = model(x)
    assert torch.allclose(out, _reference(model, x, stack), atol=1e-5)


def test_repeated_batches_reuse_nothing_stale(setup):
    """Prepared LoRA factors may be cached between batches; a new strength or a different
    LoRA on the same rows must still be what runs."""
    model, x, a, b = setup
    for stack in ([(a, 1.0)], [(a, 0.25)], [(b, 1.0)], [(a, 0.25)]):
        with torch.no_grad(), row_adapters(model, "unet", [((0, 9), stack)]):
            out = model(x)
        assert torch.allclose(out, _reference(model, x, stack), atol=1e-5)


def test_a_lora_naming_a_missing_module_fails_and_leaves_no_hooks(setup):
    model, x, a, _ = setup
    bad = LoraWeights({"unet": {"nowhere": a.for_component("unet")["proj"]}})
    with pytest.raises(AttributeError), torch.no_grad(), \
            row_adapters(model, "unet", [((0, 9), [(a, 1.0), (bad, 1.0)])]):
        model(x)
    with torch.no_grad():
        base = model(x)
    assert not any(m._forward_hooks for m in model.modules())
    assert base.shape == (9, 5)

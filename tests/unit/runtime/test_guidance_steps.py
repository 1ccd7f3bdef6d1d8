"""GuidedDenoiser's per-step shortcuts (runtime/guidance.py) change no number: one full-frame
entry of strength 1 per side skips the weighted average, timesteps and the text context are
built once per request, and the store does not grow step after step."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.runtime.guidance import GuidedDenoiser
from lego_backend.sampling import DiscreteSchedule
from lego_backend.services.protocol import ServiceSpec
from node_library.values import CondEntry, ModelRef


class _Ctx:
    """Just enough of RunContext: a store with scratch tracking, and a fake UNet that depends
    on every input the real one gets (latent, timestep, text context)."""

    def __init__(self) -> None:
        self.store = TensorStore()
        self.scratch: set[Any] = set()
        self.cancel = threading.Event()
        self.calls: list[dict[str, Any]] = []

    def put(self, t: torch.Tensor) -> Any:
        h = self.store.put(t)
        self.scratch.add(h)
        return h

    def tensor(self, h: Any) -> torch.Tensor:
        return self.store.get(h)

    def release(self, h: Any) -> None:
        if h in self.scratch:
            self.scratch.discard(h)
            self.store.release(h)

    def check_interrupt(self) -> None:
        pass

    def call(self, spec: Any, op: str, **args: Any) -> Any:
        x, t, c = (self.store.get(args[k]) for k in ("x", "t", "context"))
        self.calls.append({**args, "rows": x.shape[0]})
        out = torch.sin(x * 1.7) * 0.4 + (t / 1000.0).reshape(-1, 1, 1, 1) \
            + c.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        return self.put(out)


def _entry(ctx: _Ctx, seed: int, **kw: Any) -> CondEntry:
    g = torch.Generator().manual_seed(seed)
    return CondEntry(ctx.put(torch.randn(1, 77, 8, generator=g)), **kw)


def _model() -> ModelRef:
    return ModelRef(ServiceSpec("denoiser", "fake", Path("fake.safetensors")))


def _guided(ctx: _Ctx, pos: tuple[CondEntry, ...], neg: tuple[CondEntry, ...], cfg: float,
            direct: bool | None = None) -> GuidedDenoiser:
    g = GuidedDenoiser(ctx, _model(), DiscreteSchedule.from_config(), pos, neg, cfg)
    if direct is not None:
        g._direct = direct
    return g


def _reference(ctx: _Ctx, pos: tuple[CondEntry, ...], neg: tuple[CondEntry, ...], cfg: float,
               x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ComfyUI's rule written out: each side is the strength-weighted mean of its entries'
    predictions, then guided = uncond + (cond - uncond) * cfg."""
    schedule = DiscreteSchedule.from_config()

    def predict(entry: CondEntry) -> torch.Tensor:
        x_in = schedule.scale_input(x, sigma)
        t = schedule.nearest_timestep(sigma.reshape(-1)).float().expand(x.shape[0])
        c = ctx.store.get(entry.cond).expand(x.shape[0], -1, -1)
        out = torch.sin(x_in * 1.7) * 0.4 + (t / 1000.0).reshape(-1, 1, 1, 1) \
            + c.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        return schedule.to_denoised(out, x, sigma)

    def side(entries: tuple[CondEntry, ...]) -> torch.Tensor:
        return (sum(predict(e) * e.strength for e in entries)
                / (sum(e.strength for e in entries) + 1e-37))
    cond, uncond = side(pos), side(neg)
    return uncond + (cond - uncond) * cfg


def test_one_entry_per_side_gives_the_weighted_average_bit_for_bit():
    ctx = _Ctx()
    pos, neg = (_entry(ctx, 1),), (_entry(ctx, 2),)
    fast, slow = _guided(ctx, pos, neg, 7.0), _guided(ctx, pos, neg, 7.0, direct=False)
    assert fast._direct
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    for s in (14.6, 3.2, 0.4):
        sigma = torch.tensor(s)
        got = fast(x, sigma)
        assert torch.equal(got, slow(x, sigma))
        assert torch.allclose(got, _reference(ctx, pos, neg, 7.0, x, sigma), atol=1e-5)
        g2, u2 = fast(x, sigma, want_uncond=True)
        g3, u3 = slow(x, sigma, want_uncond=True)
        assert torch.equal(g2, g3) and torch.equal(u2, u3)


def test_weighted_entries_still_average():
    ctx = _Ctx()
    pos = (_entry(ctx, 1), _entry(ctx, 4, strength=0.5))
    neg = (_entry(ctx, 2, strength=2.0),)
    g = _guided(ctx, pos, neg, 5.0)
    assert not g._direct
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor(2.5)
    assert torch.allclose(g(x, sigma), _reference(ctx, pos, neg, 5.0, x, sigma), atol=1e-5)


def test_cfg_one_sends_only_the_positive_rows():
    ctx = _Ctx()
    pos, neg = (_entry(ctx, 1),), (_entry(ctx, 2),)
    g = _guided(ctx, pos, neg, 1.0)
    x = torch.randn(1, 4, 8, 8)
    g(x, torch.tensor(1.0))
    assert ctx.calls[-1]["rows"] == 1


def test_steps_reuse_the_context_and_leave_no_per_step_tensors():
    ctx = _Ctx()
    pos, neg = (_entry(ctx, 1),), (_entry(ctx, 2),)
    g = _guided(ctx, pos, neg, 7.0)
    x = torch.randn(1, 4, 8, 8)
    g(x, torch.tensor(5.0))
    held = len(ctx.store)
    for s in (4.0, 3.0, 2.0, 1.0):
        g(x, torch.tensor(s))
    assert len(ctx.store) == held  # per-step handles are released
    assert len({c["context"] for c in ctx.calls}) == 1  # one context handle for every step
    assert not any(c["t"] in ctx.scratch or c["x"] in ctx.scratch for c in ctx.calls)

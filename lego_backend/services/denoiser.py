"""Denoiser service: one UNet forward for a batch of (scaled latent, timestep, context) rows.
Calls from different requests with the same batch key are concatenated into one forward; the
sampling math (sigmas, CFG, solver state) stays with each request (lego_backend/runtime/denoise.py)."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.adapters import AdapterCache, loaded_rows, row_adapters
from lego_backend.services.fast_modules import direct_attention
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes


class DenoiserService(ModelService):
    """ops: unet(x, t, context, down?, mid?) -> model output handle, same shape as x.
    x: [n, C, h, w] already scaled by c_in; t: [n] continuous timesteps; context: [n, L, d];
    down/mid: ControlNet residual handles (optional); adapters: the request's LoRAs (applied to
    its rows only; one still loading is skipped: the caller waits for it by step K)."""

    model: Any = None
    step_ops = frozenset({"unet"})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.adapters = AdapterCache()

    def load(self) -> None:
        self.model = loading.load_unet(self.spec.path)
        self.model.eval().requires_grad_(False)
        direct_attention(self.model)

    def close(self) -> None:
        self.adapters.close()
        super().close()

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    def batch_key(self, call: ServiceCall) -> tuple[Any, ...] | None:
        # Rows with and without ControlNet residuals share a forward: rows without get zero
        # residuals, and x + 0 is exactly x, so their result is unchanged (batch-invariant).
        a = call.args
        return (tuple(a["x"].shape[1:]), tuple(a["context"].shape[1:]))

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        # Rows asking for the same LoRAs run next to each other, LoRA-free rows last: each
        # LoRA then costs one low-rank product per layer for all its rows (adapters.py).
        order = sorted(range(len(calls)), key=lambda i: _adapter_key(calls[i]))
        if order == list(range(len(calls))):
            return self._forward(calls)
        results = self._forward([calls[i] for i in order])
        out: list[Any] = [None] * len(calls)
        for i, result in zip(order, results):
            out[i] = result
        return out

    @torch.inference_mode()
    def _forward(self, calls: list[ServiceCall]) -> list[Any]:
        get = self.store.get
        sizes = [c.args["x"].shape[0] for c in calls]
        x = torch.cat([get(c.args["x"]) for c in calls])
        t = torch.cat([get(c.args["t"]) for c in calls])
        ctx = torch.cat([get(c.args["context"]) for c in calls])
        extra = _residuals(calls, sizes, get)
        if "text_embeds" in calls[0].args:  # SDXL: pooled text + 6 size numbers per row
            extra["added_cond_kwargs"] = {
                "text_embeds": torch.cat([get(c.args["text_embeds"]) for c in calls]),
                "time_ids": torch.cat([get(c.args["time_ids"]) for c in calls])}
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        spans = [(s, s + n) for s, n in zip(starts, sizes)]
        rows = loaded_rows(self.adapters, spans, [c.args.get("adapters", ()) for c in calls],
                           wait=False)
        with row_adapters(self.model, "unet", rows):
            out = self.model(x, t, encoder_hidden_states=ctx, return_dict=False, **extra)[0]
        return [self.store.put(part) for part in torch.split(out, sizes)]


def _adapter_key(call: ServiceCall) -> tuple[bool, tuple[tuple[str, float], ...]]:
    refs = call.args.get("adapters", ())
    return (not refs, tuple((r.identity, r.strength) for r in refs))


def _residuals(calls: list[ServiceCall], sizes: list[int], get: Any) -> dict[str, Any]:
    """ControlNet residuals of the batch's rows, zeros for rows that have none."""
    donor = next((c for c in calls if "down" in c.args), None)
    if donor is None:
        return {}
    shapes = [get(h).shape[1:] for h in donor.args["down"]]
    mid_shape = get(donor.args["mid"]).shape[1:]
    dtype = get(donor.args["mid"]).dtype

    def rows(call: ServiceCall, n: int, i: int | None) -> torch.Tensor:
        if "down" in call.args:
            return get(call.args["down"][i] if i is not None else call.args["mid"])
        return torch.zeros((n, *(shapes[i] if i is not None else mid_shape)), dtype=dtype)

    pairs = list(zip(calls, sizes))
    return {"down_block_additional_residuals":
            [torch.cat([rows(c, n, i) for c, n in pairs]) for i in range(len(shapes))],
            "mid_block_additional_residual": torch.cat([rows(c, n, None) for c, n in pairs])}

"""Denoiser service: one UNet forward for a batch of (scaled latent, timestep, context) rows.
Calls from different requests with the same batch key are concatenated into one forward; the
sampling math (sigmas, CFG, solver state) stays with each request (lego_backend/runtime/denoise.py)."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.adapters import AdapterCache, loaded_rows, row_adapters
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes


class DenoiserService(ModelService):
    """ops: unet(x, t, context, down?, mid?) -> model output handle, same shape as x.
    x: [n, C, h, w] already scaled by c_in; t: [n] continuous timesteps; context: [n, L, d];
    down/mid: ControlNet residual handles (optional); adapters: the request's LoRAs (applied to
    its rows only; one still loading is skipped: the caller waits for it by step K)."""

    model: Any = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.adapters = AdapterCache()

    def load(self) -> None:
        self.model = loading.load_unet(self.spec.path)
        self.model.eval().requires_grad_(False)

    def close(self) -> None:
        self.adapters.close()
        super().close()

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    def batch_key(self, call: ServiceCall) -> tuple[Any, ...] | None:
        a = call.args
        return (tuple(a["x"].shape[1:]), tuple(a["context"].shape[1:]), "down" in a)

    @torch.inference_mode()
    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        get = self.store.get
        sizes = [c.args["x"].shape[0] for c in calls]
        x = torch.cat([get(c.args["x"]) for c in calls])
        t = torch.cat([get(c.args["t"]) for c in calls])
        ctx = torch.cat([get(c.args["context"]) for c in calls])
        extra: dict[str, Any] = {}
        if "down" in calls[0].args:
            n_down = len(calls[0].args["down"])
            extra["down_block_additional_residuals"] = [
                torch.cat([get(c.args["down"][i]) for c in calls]) for i in range(n_down)]
            extra["mid_block_additional_residual"] = torch.cat([get(c.args["mid"]) for c in calls])
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

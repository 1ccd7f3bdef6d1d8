"""ControlNet service (SwiftDiffusion's split): residuals for the denoiser, called once per step,
a separate service so its weights are shared and it can scale and batch on its own."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.fast_modules import direct_attention
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes


class ControlNetService(ModelService):
    """ops: residuals(x, t, context, hint, strength) -> (down handles list, mid handle).
    hint: [n, 3, H, W] in 0..1 at pixel resolution (8x the latent)."""

    model: Any = None
    step_ops = frozenset({"residuals"})

    def load(self) -> None:
        self.model = loading.load_controlnet(self.spec.path).eval().requires_grad_(False)
        direct_attention(self.model)

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    def batch_key(self, call: ServiceCall) -> tuple[Any, ...] | None:
        a = call.args
        return (tuple(a["x"].shape[1:]), tuple(a["context"].shape[1:]),
                tuple(a["hint"].shape[1:]))

    @torch.inference_mode()
    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        """One forward for the whole batch at unit scale; each call's residuals are then
        scaled by its own strength (the residuals are linear in conditioning_scale)."""
        get = self.store.get
        sizes = [c.args["x"].shape[0] for c in calls]
        x = torch.cat([get(c.args["x"]) for c in calls])
        t = torch.cat([get(c.args["t"]) for c in calls])
        ctx = torch.cat([get(c.args["context"]) for c in calls])
        hint = torch.cat([get(c.args["hint"]) for c in calls])
        down, mid = self.model(x, t, encoder_hidden_states=ctx, controlnet_cond=hint,
                               conditioning_scale=1.0, return_dict=False)
        results = []
        start = 0
        for call, n in zip(calls, sizes):
            scale = float(call.args["strength"])
            rows = slice(start, start + n)
            results.append(([self.store.put(_scaled(d[rows], scale)) for d in down],
                            self.store.put(_scaled(mid[rows], scale))))
            start += n
        return results


def _scaled(residual: torch.Tensor, scale: float) -> torch.Tensor:
    # strength 1 (the usual one) is x * 1.0 == x: skip a multiply and a copy per residual.
    return residual.contiguous() if scale == 1.0 else (residual * scale).contiguous()

"""D(x, sigma) for one request: conditioning entries (areas, strengths, ControlNets) and
classifier-free guidance around per-step calls on the denoiser and ControlNet services.
cond and uncond rows that can share a forward go to the service as ONE batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lego_backend.runtime.sdxl_cond import added_cond_args
from node_library.values import CondEntry, ControlApply, ModelRef


@dataclass(frozen=True)
class _Job:
    entry: CondEntry
    side: int  # 0 = positive, 1 = negative


def _bcast(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))


class GuidedDenoiser:
    def __init__(self, ctx: Any, model: ModelRef, schedule: Any, positive: tuple[CondEntry, ...],
                 negative: tuple[CondEntry, ...], cfg: float):
        self.ctx = ctx
        self.model = model
        self.schedule = schedule
        self.cfg = float(cfg)
        self.positive = [_Job(e, 0) for e in positive]
        self.negative = [_Job(e, 1) for e in negative]
        self._hints: dict[tuple[Any, int, int], torch.Tensor] = {}
        self._pixels = (0, 0)  # (height, width) of the latent being sampled, in pixels
        # Per-request structures that are the same at every step, built once (the per-step
        # Python work of every request adds up at the replica: it is CPU the forward lacks).
        self._groups: dict[bool, list[tuple[tuple[Any, ...], list[_Job]]]] = {}
        self._contexts: dict[tuple[Any, ...], Any] = {}  # (conds, rows) -> context handle
        self._timesteps: dict[tuple[float, int], torch.Tensor] = {}
        # One full-frame entry of strength 1 per side: its prediction IS that side's result
        # (the weighted average over entries reduces to it exactly), so skip the averaging.
        self._direct = all(len(side) <= 1 for side in (positive, negative)) and all(
            e.area is None and e.strength == 1.0 for e in (*positive, *negative))

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return float("inf")
        if percent >= 1.0:
            return 0.0
        return float(self.schedule.sigma(torch.tensor((1.0 - percent) * 999.0)))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor,
                 want_uncond: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Guided x0 prediction; with want_uncond, (guided, unconditional) for CFG++ samplers."""
        self.ctx.check_interrupt()
        self._pixels = (x.shape[-2] * 8, x.shape[-1] * 8)  # SDXL's default size conditioning
        # At cfg 1 the unconditional prediction cancels out: skip it unless asked for.
        need_uncond = want_uncond or self.cfg != 1.0
        groups = self._groups.get(need_uncond)
        if groups is None:
            by_key: dict[tuple[Any, ...], list[_Job]] = {}
            for job in self.positive + (self.negative if need_uncond else []):
                ctx_len = job.entry.cond.shape[1]
                by_key.setdefault((job.entry.area, job.entry.control, ctx_len), []).append(job)
            groups = self._groups[need_uncond] = list(by_key.items())
        uniform = sigma.numel() == 1
        sigma = sigma.reshape(-1).expand(x.shape[0]) if uniform else sigma.reshape(-1)
        if self._direct and len(self.positive) == 1 and (
                not need_uncond or len(self.negative) == 1):
            preds: dict[int, torch.Tensor] = {}
            for (_, control, _), members in groups:
                for job, pred in zip(members, self._predict(x, sigma, members, control,
                                                             uniform)):
                    preds[job.side] = pred
            cond = preds[0]
            if not need_uncond:
                return cond
            uncond = preds[1]
        else:
            sums = torch.zeros((2, *x.shape), dtype=x.dtype)
            counts = torch.full((2, *x.shape), 1e-37, dtype=x.dtype)
            for (area, control, _), members in groups:
                region = self._region(area, x)
                preds_ = self._predict(x[region], sigma, members, control, uniform)
                for job, pred in zip(members, preds_):
                    sums[job.side][region] += pred * job.entry.strength
                    counts[job.side][region] += job.entry.strength
            cond = sums[0] / counts[0]
            if not need_uncond:
                return cond
            uncond = sums[1] / counts[1]
        guided = uncond + (cond - uncond) * self.cfg
        return (guided, uncond) if want_uncond else guided

    def _region(self, area: tuple[int, int, int, int] | None, x: torch.Tensor) -> tuple[Any, ...]:
        if area is None:
            return (slice(None),) * x.dim()
        h, w, y, xx = (v // 8 for v in area)
        hh, ww = x.shape[-2:]
        y, xx = min(y, hh - 1), min(xx, ww - 1)
        return (slice(None), slice(None), slice(y, min(hh, y + max(1, h))),
                slice(xx, min(ww, xx + max(1, w))))

    def _predict(self, x: torch.Tensor, sigma: torch.Tensor, jobs: list[_Job],
                 control: ControlApply | None, uniform: bool = False) -> list[torch.Tensor]:
        """One service call for all jobs of a group: rows [job0 batch, job1 batch, ...].
        `uniform`: every row has the same sigma (the timesteps can be reused between steps)."""
        ctx, n, b = self.ctx, len(jobs), x.shape[0]
        x_rows = x.repeat(n, 1, 1, 1)
        s_rows = sigma.repeat(n)
        x_in = self.schedule.scale_input(x_rows, _bcast(s_rows, x_rows))
        t = self._timestep(s_rows, uniform)
        context_h = self._context(jobs, b)
        args: dict[str, Any] = {"x": ctx.put(x_in), "t": ctx.put(t), "context": context_h,
                                "adapters": self.model.adapters}
        if self.model.denoiser.family == "sdxl":
            args.update(added_cond_args(ctx, [j.entry for j in jobs], b, self._pixels))
        residuals = self._control(control, x_in, t, context_h, float(sigma[0]))
        if residuals is not None:
            down, mid = residuals
            args["down"] = [ctx.put(d) for d in down]
            args["mid"] = ctx.put(mid)
        out_h = ctx.call(self.model.denoiser, "unet", **args)
        out = ctx.tensor(out_h)
        # Per-step tensors die here: release their handles so the store does not grow (the
        # context handle lives for the whole sampling loop: the node's scratch frees it).
        for h in [args["x"], args["t"], out_h, *args.get("down", []),
                  *([args["mid"]] if "mid" in args else []),
                  *[args[k] for k in ("text_embeds", "time_ids") if k in args]]:
            ctx.release(h)
        denoised = self.schedule.to_denoised(out, x_rows, _bcast(s_rows, x_rows))
        return list(torch.split(denoised, b))

    def _timestep(self, s_rows: torch.Tensor, uniform: bool) -> torch.Tensor:
        """The UNet's timestep per row: ComfyUI's nearest table entry to each sigma."""
        if not uniform:
            return self.schedule.nearest_timestep(s_rows).float()
        key = (float(s_rows[0]), s_rows.shape[0])
        t = self._timesteps.get(key)
        if t is None:
            t = self._timesteps[key] = self.schedule.nearest_timestep(s_rows).float()
        return t

    def _context(self, jobs: list[_Job], rows_each: int) -> Any:
        """The text-encoder rows of a group's jobs, one handle per request and group: the same
        tensor is sent at every step instead of being rebuilt and copied each time."""
        key = (tuple(j.entry.cond for j in jobs), rows_each)
        handle = self._contexts.get(key)
        if handle is None:
            ctx = self.ctx
            context = torch.cat([ctx.tensor(j.entry.cond).expand(rows_each, -1, -1)
                                 for j in jobs])
            handle = self._contexts[key] = ctx.put(context)
        return handle

    def _control(self, control: ControlApply | None, x_in: torch.Tensor, t: torch.Tensor,
                 context: Any, sigma: float) -> tuple[list[torch.Tensor], torch.Tensor] | None:
        """Sum of the residuals of every active ControlNet in the chain (SwiftDiffusion: each
        ControlNet is its own service, called once per step)."""
        ctx = self.ctx
        down_sum: list[torch.Tensor] | None = None
        mid_sum: torch.Tensor | None = None
        while control is not None:
            hi, lo = self.percent_to_sigma(control.start_percent), self.percent_to_sigma(control.end_percent)
            if lo <= sigma <= hi:
                hint = self._hint(control, x_in)
                sent = {"x": ctx.put(x_in), "t": ctx.put(t), "hint": ctx.put(hint)}
                down_h, mid_h = ctx.call(control.net.controlnet, "residuals", context=context,
                                         strength=control.strength, **sent)
                for h in sent.values():
                    ctx.release(h)
                down = [ctx.tensor(h) for h in down_h]
                mid = ctx.tensor(mid_h)
                for h in [*down_h, mid_h]:
                    ctx.release(h)
                down_sum = down if down_sum is None else [a + b for a, b in zip(down_sum, down)]
                mid_sum = mid if mid_sum is None else mid_sum + mid
            control = control.previous
        return None if down_sum is None else (down_sum, mid_sum)

    def _hint(self, control: ControlApply, x_in: torch.Tensor) -> torch.Tensor:
        """The hint image at pixel size (8x the latent), one row per latent row."""
        rows, h, w = x_in.shape[0], x_in.shape[-2] * 8, x_in.shape[-1] * 8
        key = (control.hint, rows, h * 100000 + w)
        if key not in self._hints:
            img = self.ctx.tensor(control.hint)[..., :3].permute(0, 3, 1, 2).float()
            img = F.interpolate(img, size=(h, w), mode="nearest-exact")
            reps = -(-rows // img.shape[0])
            self._hints[key] = img.repeat(reps, 1, 1, 1)[:rows].contiguous()
        return self._hints[key]

"""One KSampler run for one request: noise, sigmas, the sampler generator and the guided
denoiser that answers its requests through the model services."""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import torch

from lego_backend.runtime.guidance import GuidedDenoiser
from lego_backend.runtime.latent_format import latent_format
from lego_backend.sampling import (
    DiscreteSchedule,
    GuidedPrediction,
    advanced_sigmas,
    build_sampler,
    prepare_noise,
    run_sampler,
    sampling_sigmas,
)
from node_library.values import CondEntry, Latent, ModelRef


@dataclass(frozen=True)
class SampleRequest:
    model: ModelRef
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    positive: tuple[CondEntry, ...]
    negative: tuple[CondEntry, ...]
    latent: Latent
    denoise: float = 1.0
    add_noise: bool = True
    start_at_step: int | None = None  # KSamplerAdvanced only
    end_at_step: int | None = None
    return_with_leftover_noise: bool = False


def schedule_for(model: ModelRef) -> DiscreteSchedule:
    return DiscreteSchedule.from_config(prediction_type=model.prediction_type)


def sample(ctx: Any, req: SampleRequest) -> Latent:
    schedule = schedule_for(req.model)
    fmt = latent_format(req.model.denoiser.family)
    latent_raw = ctx.tensor(req.latent.samples).float()
    if req.start_at_step is None:
        sigmas = sampling_sigmas(schedule, req.scheduler, req.steps, req.denoise,
                                 req.sampler_name)
    else:
        full = sampling_sigmas(schedule, req.scheduler, req.steps, 1.0, req.sampler_name)
        sigmas = advanced_sigmas(full, req.start_at_step, req.end_at_step,
                                 req.return_with_leftover_noise)
    if len(sigmas) < 2:  # nothing to do (denoise 0, or start >= end)
        return req.latent
    x0 = latent_raw * fmt.scale_factor
    noise = (prepare_noise(tuple(latent_raw.shape), req.seed) if req.add_noise
             else torch.zeros_like(latent_raw))
    first = float(sigmas[0])
    x = schedule.noise_scaling(sigmas[0], noise, x0, schedule.is_max_denoise(first))
    mask = None
    if req.latent.noise_mask is not None:
        mask = _mask_like(ctx.tensor(req.latent.noise_mask), x)
    guided = GuidedDenoiser(ctx, req.model, schedule, req.positive, req.negative, req.cfg)
    # Bounded asynchronous LoRA loading: denoising starts while adapters load; from step K on
    # they must be in (K = 0: strict, every step sees the LoRA, output is deterministic).
    loading: list[Any] = []
    apply_from = max(0, int(getattr(ctx, "lora_async_steps", 0)))

    def denoise(request: Any) -> Any:
        if loading and request.step >= apply_from:
            for future in loading:
                future.result()  # a broken LoRA file fails this node here
            loading.clear()
        xin = request.x
        if mask is not None:  # inpainting: keep the unmasked area on the original's noise path
            xin = xin * mask + schedule.noise_scaling(request.sigma, noise, x0, False) * (1 - mask)
        if request.needs_uncond:
            d, u = guided(xin, request.sigma, want_uncond=True)
            if mask is not None:
                d, u = d * mask + x0 * (1 - mask), u * mask + x0 * (1 - mask)
            return GuidedPrediction(d, u)
        d = guided(xin, request.sigma)
        return d * mask + x0 * (1 - mask) if mask is not None else d

    def on_step(step: int, total: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
        ctx.progress(step + 1, total, preview=denoised)

    gen = build_sampler(req.sampler_name, x, sigmas, req.seed)
    with ExitStack() as streams:  # this request calls these services at every step
        streams.enter_context(ctx.stream(req.model.denoiser, req.model.adapters))
        for spec in _controlnets(req.positive + req.negative):
            streams.enter_context(ctx.stream(spec))
        # on the replica this request is pinned to
        loading.extend(ctx.prefetch_adapters(req.model.denoiser, req.model.adapters))
        out = run_sampler(gen, denoise, on_step)
    if mask is not None:
        out = out * mask + x0 * (1 - mask)
    out = schedule.inverse_noise_scaling(sigmas[-1], out) / fmt.scale_factor
    return replace(req.latent, samples=ctx.put(out.contiguous()))


def _controlnets(entries: tuple[CondEntry, ...]) -> list[Any]:
    specs = []
    for entry in entries:
        control = entry.control
        while control is not None:
            if control.net.controlnet not in specs:
                specs.append(control.net.controlnet)
            control = control.previous
    return specs


def _mask_like(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    m = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    m = torch.nn.functional.interpolate(m, size=x.shape[-2:], mode="bilinear",
                                        align_corners=False)
    reps = -(-x.shape[0] // m.shape[0])
    return m.repeat(reps, 1, 1, 1)[: x.shape[0]].expand(-1, x.shape[1], -1, -1)

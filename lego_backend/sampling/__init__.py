"""Samplers and sigma schedules under ComfyUI's names, decoupled from the model.

A KSampler run, as the denoiser service's caller drives it:

    schedule = DiscreteSchedule.from_config()                  # SD1.x/SD2.x sigma table
    sigmas = sampling_sigmas(schedule, "karras", steps, denoise, sampler_name)
    # (KSamplerAdvanced: sigmas = advanced_sigmas(sigmas, start, end, leftover_noise))
    # empty sigmas (denoise 0, start past the end): return `latent` unchanged, no noise
    noise = prepare_noise(latent.shape, seed)                  # ComfyUI-identical per seed
    # (KSamplerAdvanced add_noise="disable": noise = zeros)
    x = schedule.noise_scaling(sigmas[0], noise, latent,
                               schedule.is_max_denoise(float(sigmas[0])))
    gen = build_sampler(sampler_name, x, sigmas, seed)         # a generator: see seam.py
    out = run_sampler(gen, denoise_fn, on_step)                # or drive many gens batched
    out = schedule.inverse_noise_scaling(sigmas[-1], out)

where denoise_fn(req) evaluates the UNet on schedule.scale_input(req.x, req.sigma) at
schedule.nearest_timestep(req.sigma), applies CFG and returns
schedule.to_denoised(output, req.x, req.sigma) (for req.needs_uncond, a GuidedPrediction with
the unconditional x0 too). Latents here are UNet-space: ComfyUI's LATENT is multiplied by the
VAE's scale factor (0.18215 for SD1.x) before sampling and divided after.

Modules: names (plain-data name lists, torch-free), seam (request/reply structs), driver,
model_sampling, schedules, noise, registry, and the sampler families (samplers_euler,
samplers_dpmpp, samplers_multistep, samplers_misc, unipc). The names below are re-exported
lazily so importing `lego_backend.sampling.names` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "SAMPLER_NAMES": "names", "SCHEDULER_NAMES": "names", "SUPPORTED_SAMPLERS": "names",
    "UnsupportedSamplerError": "names", "UnknownSchedulerError": "names",
    "unsupported_reason": "names", "check_sampler": "names",
    "DenoiseRequest": "seam", "GuidedPrediction": "seam", "SamplerGen": "seam",
    "run_sampler": "driver", "StepTracker": "driver",
    "DiscreteSchedule": "model_sampling",
    "calculate_sigmas": "schedules", "sampling_sigmas": "schedules",
    "advanced_sigmas": "schedules",
    "prepare_noise": "noise", "default_noise_sampler": "noise",
    "BrownianTreeNoiseSampler": "noise",
    "build_sampler": "registry", "SAMPLERS": "registry",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

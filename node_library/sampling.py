"""KSampler nodes: the denoising loop, one denoiser-service call per step (per evaluation)."""
from __future__ import annotations

from typing import Any

from lego_backend.runtime.sample import SampleRequest, sample
from lego_backend.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, unsupported_reason
from node_library.inputs import COMBO, FLOAT, INT, MAX_SEED, OUT, SOCKET
from node_library.spec import NodeOutput, NodeSpec


def ksampler(ctx: Any, model: Any, seed: int, steps: int, cfg: float, sampler_name: str,
             scheduler: str, positive: Any, negative: Any, latent_image: Any,
             denoise: float = 1.0) -> NodeOutput:
    return NodeOutput((sample(ctx, SampleRequest(model, seed, steps, cfg, sampler_name,
                                                 scheduler, positive, negative, latent_image,
                                                 denoise)),))


def ksampler_advanced(ctx: Any, model: Any, add_noise: str, noise_seed: int, steps: int,
                      cfg: float, sampler_name: str, scheduler: str, positive: Any, negative: Any,
                      latent_image: Any, start_at_step: int, end_at_step: int,
                      return_with_leftover_noise: str) -> NodeOutput:
    req = SampleRequest(model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                        negative, latent_image, 1.0, add_noise == "enable", start_at_step,
                        end_at_step, return_with_leftover_noise == "enable")
    return NodeOutput((sample(ctx, req),))


def check_sampler(ctx: Any, sampler_name: str = "euler", **_: Any) -> tuple[str, str] | None:
    reason = unsupported_reason(sampler_name)
    return ("sampler_name", reason) if reason else None


def _common(seed_name: str) -> tuple[Any, ...]:
    return (
        INT(seed_name, 0, 0, MAX_SEED, control_after_generate=True,
            tooltip="The random seed used for creating the noise."),
        INT("steps", 20, 1, 10000, tooltip="The number of steps used in the denoising process."),
        FLOAT("cfg", 8.0, 0.0, 100.0, step=0.1, round=0.01,
              tooltip="The Classifier-Free Guidance scale balances creativity and adherence to "
                      "the prompt."),
        COMBO("sampler_name", SAMPLER_NAMES,
              tooltip="The algorithm used when sampling."),
        COMBO("scheduler", SCHEDULER_NAMES,
              tooltip="The scheduler controls how noise is gradually removed to form the image."),
        SOCKET("positive", "CONDITIONING",
               tooltip="The conditioning describing the attributes you want to include."),
        SOCKET("negative", "CONDITIONING",
               tooltip="The conditioning describing the attributes you want to exclude."),
        SOCKET("latent_image", "LATENT", tooltip="The latent image to denoise."),
    )


SPECS = [
    NodeSpec("KSampler", "KSampler", "sampling",
             (SOCKET("model", "MODEL", tooltip="The model used for denoising the input latent."),
              *_common("seed"),
              FLOAT("denoise", 1.0, 0.0, 1.0, step=0.01,
                    tooltip="The amount of denoising applied.")),
             (OUT("LATENT", tooltip="The denoised latent."),), ksampler,
             description="Uses the provided model, positive and negative conditioning to denoise "
                         "the latent image.",
             validate=check_sampler, services=("denoiser",)),
    NodeSpec("KSamplerAdvanced", "KSampler (Advanced)", "sampling",
             (SOCKET("model", "MODEL"), COMBO("add_noise", ("enable", "disable")),
              *_common("noise_seed"),
              INT("start_at_step", 0, 0, 10000), INT("end_at_step", 10000, 0, 10000),
              COMBO("return_with_leftover_noise", ("disable", "enable"))),
             (OUT("LATENT"),), ksampler_advanced, validate=check_sampler,
             services=("denoiser",)),
]

"""ComfyUI's sampler and scheduler names, and which of them this server really implements.

The lists are copied from ComfyUI's KSampler combo (v0.3.64) *in order*: the web editor renders
them as drop-downs and imported workflows store the strings, so both order and spelling are part
of the protocol. A name we list but do not implement must fail loudly with its own name in the
message; quietly running a different algorithm would produce a different image than the user's
workflow promises.
"""
from __future__ import annotations

from lego_backend.errors import LegoError

SAMPLER_NAMES: tuple[str, ...] = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
    "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp",
    "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)

SCHEDULER_NAMES: tuple[str, ...] = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
)

# Must equal the keys of registry.SAMPLERS (a unit test checks it). Kept here as plain data so
# the node layer can build its combo and validate prompts without importing torch.
SUPPORTED_SAMPLERS: frozenset[str] = frozenset({
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu",
    "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
    "res_multistep", "res_multistep_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp",
    "ddim", "uni_pc", "uni_pc_bh2",
})

# Samplers whose schedule ComfyUI computes for steps+1 and then drops the second-to-last sigma
# (their last step would otherwise be wasted on a tiny interval). Needed for identical sigmas.
DISCARD_PENULTIMATE_SIGMA_SAMPLERS: frozenset[str] = frozenset({
    "dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2",
})

# Why a known name is not implemented, for the messages users see.
_WHY_NOT: dict[str, str] = {
    "dpm_fast": "it ignores the scheduler's sigmas",
    "dpm_adaptive": "it chooses its own step sizes, so it cannot be batched step by step",
}


class UnsupportedSamplerError(LegoError, ValueError):
    """A KSampler asked for a sampler this server does not run. The message names it."""

    def __init__(self, sampler_name: str, message: str):
        super().__init__(message)
        self.sampler_name = sampler_name


class UnknownSchedulerError(LegoError, ValueError):
    """A scheduler name that is not one of ComfyUI's."""

    def __init__(self, scheduler_name: str):
        super().__init__(f"scheduler '{scheduler_name}' is not a known scheduler "
                         f"(known: {', '.join(SCHEDULER_NAMES)})")
        self.scheduler_name = scheduler_name


def unsupported_reason(sampler_name: str) -> str | None:
    """None if `sampler_name` runs here, else a message that names it (and says why if known)."""
    if sampler_name in SUPPORTED_SAMPLERS:
        return None
    if sampler_name not in SAMPLER_NAMES:
        return f"sampler '{sampler_name}' is not a known ComfyUI sampler"
    why = _WHY_NOT.get(sampler_name)
    suffix = f" ({why})" if why else ""
    return f"sampler '{sampler_name}' is not supported by this server yet{suffix}"


def check_sampler(sampler_name: str) -> None:
    """Raise UnsupportedSamplerError unless `sampler_name` is implemented."""
    reason = unsupported_reason(sampler_name)
    if reason is not None:
        raise UnsupportedSamplerError(sampler_name, reason)

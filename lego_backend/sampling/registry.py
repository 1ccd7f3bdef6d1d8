"""sampler_name -> sampler generator. The one place that knows which function runs for which
ComfyUI name (aliases included), and the entry point callers use to start a sampler."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from torch import Tensor

from lego_backend.sampling import samplers_dpmpp as dpmpp
from lego_backend.sampling import samplers_euler as ode
from lego_backend.sampling import samplers_misc as misc
from lego_backend.sampling import samplers_multistep as multistep
from lego_backend.sampling import unipc
from lego_backend.sampling.names import check_sampler
from lego_backend.sampling.seam import SamplerGen

# sampler(x, sigmas, seed): x is the noised starting latent, sigmas the schedule (float32,
# decreasing), seed the request's seed for step noise (ignored by deterministic samplers).
SamplerFn = Callable[[Tensor, Tensor, int], SamplerGen]

SAMPLERS: Mapping[str, SamplerFn] = MappingProxyType({
    "euler": ode.euler,
    "euler_cfg_pp": ode.euler_cfg_pp,
    "euler_ancestral": ode.euler_ancestral,
    "euler_ancestral_cfg_pp": ode.euler_ancestral_cfg_pp,
    "heun": ode.heun,
    "heunpp2": ode.heunpp2,
    "dpm_2": ode.dpm_2,
    "dpm_2_ancestral": ode.dpm_2_ancestral,
    "lms": multistep.lms,
    "dpmpp_2s_ancestral": dpmpp.dpmpp_2s_ancestral,
    "dpmpp_sde": dpmpp.dpmpp_sde,
    # The _gpu variants only move the Brownian tree to the GPU; noise is CPU-generated here.
    "dpmpp_sde_gpu": dpmpp.dpmpp_sde,
    "dpmpp_2m": dpmpp.dpmpp_2m,
    "dpmpp_2m_sde": dpmpp.dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": dpmpp.dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": dpmpp.dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": dpmpp.dpmpp_2m_sde_heun,
    "dpmpp_3m_sde": dpmpp.dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": dpmpp.dpmpp_3m_sde,
    "ddpm": misc.ddpm,
    "lcm": misc.lcm,
    "ipndm": multistep.ipndm,
    "ipndm_v": multistep.ipndm_v,
    "deis": multistep.deis,
    "res_multistep": multistep.res_multistep,
    "res_multistep_cfg_pp": multistep.res_multistep_cfg_pp,
    "gradient_estimation": multistep.gradient_estimation,
    "gradient_estimation_cfg_pp": multistep.gradient_estimation_cfg_pp,
    # ComfyUI runs "ddim" as Euler (DDIM's update is Euler's in the VE parameterisation).
    "ddim": ode.euler,
    "uni_pc": unipc.uni_pc,
    "uni_pc_bh2": unipc.uni_pc_bh2,
})


def _nothing_to_do(x: Tensor) -> SamplerGen:
    """An empty schedule (denoise 0, or a KSamplerAdvanced start past the end): the latent is
    returned unchanged without a model evaluation, as in ComfyUI."""
    return x
    yield  # pragma: no cover - makes this function a generator


def build_sampler(sampler_name: str, x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Start sampler `sampler_name` from latent `x` (already noised to sigmas[0]) over
    `sigmas`. Raises UnsupportedSamplerError (naming the sampler) before any work is done."""
    check_sampler(sampler_name)
    if sigmas.ndim != 1:
        raise ValueError(f"sigmas must be 1-D, got shape {tuple(sigmas.shape)}")
    if len(sigmas) < 2:
        return _nothing_to_do(x)
    return SAMPLERS[sampler_name](x, sigmas, seed)

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lego_backend.sampling.names import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    SUPPORTED_SAMPLERS,
    UnsupportedSamplerError,
    check_sampler,
    unsupported_reason,
)
from lego_backend.sampling.registry import SAMPLERS, build_sampler


def test_sampler_names_are_comfyuis_list_in_order():
    assert len(SAMPLER_NAMES) == 42 == len(set(SAMPLER_NAMES))
    assert SAMPLER_NAMES[:5] == ("euler", "euler_cfg_pp", "euler_ancestral",
                                 "euler_ancestral_cfg_pp", "heun")
    assert SAMPLER_NAMES[-3:] == ("ddim", "uni_pc", "uni_pc_bh2")
    assert SAMPLER_NAMES.index("dpmpp_2m") == 15


def test_scheduler_names_in_order():
    assert SCHEDULER_NAMES == ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform",
                               "beta", "normal", "linear_quadratic", "kl_optimal")


def test_supported_set_matches_the_registry():
    assert SUPPORTED_SAMPLERS <= set(SAMPLER_NAMES)
    assert set(SAMPLERS) == SUPPORTED_SAMPLERS
    for core in ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_sde",
                 "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "lcm", "ddpm", "ipndm"):
        assert core in SUPPORTED_SAMPLERS


def test_supported_names_have_no_reason():
    for name in SUPPORTED_SAMPLERS:
        assert unsupported_reason(name) is None
        check_sampler(name)


@pytest.mark.parametrize("name", sorted(set(SAMPLER_NAMES) - SUPPORTED_SAMPLERS))
def test_every_unsupported_name_is_refused_by_name(name):
    reason = unsupported_reason(name)
    assert reason is not None and f"'{name}'" in reason and "not supported" in reason
    with pytest.raises(UnsupportedSamplerError) as info:
        build_sampler(name, torch.zeros(1, 4, 2, 2), torch.tensor([1.0, 0.0]), 0)
    assert name in str(info.value) and info.value.sampler_name == name


def test_unknown_name_is_refused_by_name():
    reason = unsupported_reason("my_sampler")
    assert reason is not None and "'my_sampler'" in reason
    with pytest.raises(UnsupportedSamplerError, match="my_sampler"):
        check_sampler("my_sampler")


def test_names_module_does_not_import_torch():
    code = ("import sys, lego_backend.sampling.names as n; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(n.SAMPLER_NAMES))")
    repo = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=repo)
    assert out.stdout.strip() == "42"

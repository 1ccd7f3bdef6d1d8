"""The seam between a sampler and whoever evaluates the model: the boundary structs, no logic.

A sampler is a generator. It yields a `DenoiseRequest` each time it needs D(x, sigma), receives
the answer through `.send()` and finally returns the sampled latent (StopIteration.value). It
never calls the model itself, so a runtime can hold many samplers at once, collect their
pending requests and answer them with one batched UNet call (step-level batching across
prompts); interrupting a prompt is just not resuming (or `.close()`-ing) its generator.
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class DenoiseRequest:
    """One model evaluation a sampler needs before it can continue."""

    x: Tensor  # noisy latent, the request's own shape [B, C, H, W]; unscaled (VE) input
    sigma: Tensor  # 0-d float tensor: noise level of `x` (the caller expands it per sample)
    step: int  # 0-based index of the sampling step this evaluation belongs to
    total_steps: int  # len(sigmas) - 1: the number of steps of this run, for progress
    needs_uncond: bool = False  # cfg_pp samplers: reply must be a GuidedPrediction


@dataclass(frozen=True)
class GuidedPrediction:
    """Reply for requests with needs_uncond=True (CFG++ samplers need both predictions).

    The caller must evaluate the negative conditioning even when cfg == 1 (ComfyUI disables its
    cfg=1 shortcut for these samplers), because CFG++ re-noises with the unconditional branch.
    """

    denoised: Tensor  # x0 prediction with classifier-free guidance applied
    uncond: Tensor  # x0 prediction of the unconditional (negative) branch alone


# What a caller sends back: the guided x0 prediction, or both predictions for cfg_pp samplers.
Reply = Tensor | GuidedPrediction

# The type of every sampler: yields requests, is sent replies, returns the final latent.
SamplerGen = Generator[DenoiseRequest, Reply, Tensor]


class MissingUncondError(ValueError):
    """A cfg_pp sampler received a bare tensor instead of a GuidedPrediction."""


def denoised_of(reply: Reply) -> Tensor:
    """The guided x0 prediction out of either reply shape."""
    return reply.denoised if isinstance(reply, GuidedPrediction) else reply


def guided_of(reply: Reply) -> GuidedPrediction:
    """Both predictions; a bare tensor here is a caller bug, so say what was expected."""
    if not isinstance(reply, GuidedPrediction):
        raise MissingUncondError(
            "this sampler needs the unconditional prediction: reply to requests with "
            "needs_uncond=True with GuidedPrediction(denoised, uncond)")
    return reply

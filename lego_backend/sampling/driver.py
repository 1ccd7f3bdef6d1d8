"""Driving a sampler generator synchronously, and turning its requests into progress events.

`run_sampler` is the simplest caller of the seam (one request at a time, e.g. tests, the CLI
and a batch-1 replica). A batching runtime drives many generators itself and reuses
`StepTracker` so its progress events mean exactly what these mean.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from lego_backend.sampling.seam import DenoiseRequest, Reply, SamplerGen, denoised_of

# on_step(step, total, x, denoised): `step` is the 0-based index of the step that just
# completed, `x` the latent that step started from and `denoised` its first x0 prediction
# (what ComfyUI's previews show). ComfyUI's progress value is step + 1 of total.
OnStep = Callable[[int, int, Tensor, Tensor], None]
DenoiseFn = Callable[[DenoiseRequest], Reply]


class StepTracker:
    """Reports a step as completed when the sampler moves past it (a later step's request, or
    the end of sampling): multi-evaluation samplers yield several requests per step."""

    def __init__(self, on_step: OnStep | None):
        self._on_step = on_step
        self._pending: tuple[int, int, Tensor, Tensor] | None = None

    def saw(self, request: DenoiseRequest) -> None:
        """Call with every request the sampler yields, before answering it."""
        if self._pending is not None and request.step != self._pending[0]:
            self._flush()

    def answered(self, request: DenoiseRequest, reply: Reply) -> None:
        """Call with every reply; the first one of a step is the one a preview shows."""
        if self._pending is None:
            self._pending = (request.step, request.total_steps, request.x, denoised_of(reply))

    def finish(self) -> None:
        """Call once the sampler has returned: its last step is complete too."""
        self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and self._on_step is not None:
            self._on_step(*pending)


def run_sampler(gen: SamplerGen, denoise_fn: DenoiseFn,
                on_step: OnStep | None = None) -> Tensor:
    """Answer every request of `gen` with `denoise_fn` until it returns the sampled latent."""
    tracker = StepTracker(on_step)
    reply: Reply | None = None
    while True:
        try:
            request = next(gen) if reply is None else gen.send(reply)
        except StopIteration as done:
            tracker.finish()
            result: Tensor = done.value
            return result
        tracker.saw(request)
        reply = denoise_fn(request)
        tracker.answered(request, reply)

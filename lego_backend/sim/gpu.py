"""One simulated GPU: the calls waiting for it, and the batch boundary at which it asks the
server's policy (`pick_batch`) what runs next. A GPU runs one batch at a time; the services
placed on it (denoiser, text encoder, VAE, ControlNet of the checkpoints it hosts) share one
waiting list whose batch keys keep services apart, so EDF across services on a GPU is the
same earliest-deadline-first rule a replica applies to its own queue."""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lego_backend.runtime import scheduler
from lego_backend.runtime.scheduler import Waiting

ENCODE, STEP, CONTROLNET, DECODE = "encode", "step", "controlnet", "decode"


class Call:
    """A queued service call: what the policy sees, and what to do when it has run."""
    __slots__ = ("op", "state", "waiting")

    def __init__(self, waiting: Waiting, op: str, state: Any):
        self.waiting = waiting
        self.op = op
        self.state = state


@dataclass(eq=False, slots=True)
class Gpu:
    index: int
    mem_bytes: int
    max_batch: int  # largest batch any service on it accepts (the policy's limit)
    max_running: int  # prompts in flight on it (the lane's runners); more wait in `prompts`
    hosts: tuple[str, ...] = ()  # services placed here (checkpoints or workflow kinds)
    queue: list[Call] = field(default_factory=list)
    prompts: deque[Any] = field(default_factory=deque)  # admitted, waiting for a runner
    running: int = 0
    streams: int = 0  # requests in their sampling loop here (the policy's open_streams)
    busy: bool = False
    wake_at: float = -1.0  # a pending linger wake-up, or -1
    backlog_s: float = 0.0  # standalone seconds of work admitted and not finished
    # LoRAs and ControlNets on it (micro), LRU order: id -> (ready time, bytes)
    adapters: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    fused_lora: dict[str, tuple[str, ...]] = field(default_factory=dict)  # monolithic kind->LoRA
    busy_s: float = 0.0
    step_batches: int = 0
    step_rows: int = 0


class Executor:
    """Drives every GPU's batch boundaries on the event loop. `duration(gpu, op, calls)` says
    how long a batch takes; `finish(gpu, calls)` runs the members' continuations."""

    def __init__(self, loop: Any, linger_s: float,
                 duration: Callable[[Gpu, str, list[Call]], float],
                 finish: Callable[[Gpu, list[Call]], None],
                 batch_limit: Callable[[Gpu, Call], int]):
        self.loop = loop
        self.linger_s = linger_s
        self._duration = duration
        self._finish = finish
        self._limit = batch_limit
        self.policy_calls = 0

    def submit(self, gpu: Gpu, call: Call) -> None:
        gpu.queue.append(call)
        if not gpu.busy:
            self.kick(gpu)

    def kick(self, gpu: Gpu) -> None:
        """A batch boundary: ask the policy; run what it releases or wake up when it says."""
        if gpu.busy or not gpu.queue:
            return
        queue = gpu.queue
        now = self.loop.now
        # looked up at call time so a test (or a policy experiment) can patch the module
        decision = scheduler.pick_batch([c.waiting for c in queue], now, gpu.max_batch,
                                        gpu.streams, self.linger_s)
        self.policy_calls += 1
        if not decision.members:
            wake = now + decision.wait_s
            if gpu.wake_at < now or wake < gpu.wake_at:
                gpu.wake_at = wake
                self.loop.at(wake, self._wake, gpu)
            return
        members = decision.members
        if len(members) > 1:
            limit = self._limit(gpu, queue[members[0]])
            if len(members) > limit:  # the service's own batch limit is below the GPU's
                members = members[:limit]
        if len(members) == len(queue):
            calls = queue
            gpu.queue = []
        else:
            picked = set(members)
            calls = [queue[i] for i in members]
            gpu.queue = [c for i, c in enumerate(queue) if i not in picked]
        op = calls[0].op
        took = self._duration(gpu, op, calls)
        if op == STEP:
            gpu.step_batches += 1
            gpu.step_rows += len(calls)
        gpu.busy = True
        gpu.busy_s += took
        self.loop.at(now + took, self._done, gpu, calls)

    def _wake(self, gpu: Gpu) -> None:
        if self.loop.now >= gpu.wake_at:
            gpu.wake_at = -1.0
        self.kick(gpu)

    def _done(self, gpu: Gpu, calls: list[Call]) -> None:
        # continuations first, with the GPU still marked busy: members resubmit their next
        # step at this instant and must all be waiting when the policy is asked
        self._finish(gpu, calls)
        gpu.busy = False
        self.kick(gpu)

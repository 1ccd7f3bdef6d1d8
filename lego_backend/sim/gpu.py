"""Simulated hosts (GPUs or CPU machines), the lanes that run prompts on them and the units that
run batches, and the batch boundary at which a unit asks the server's policy (`pick_batch`) what
runs next.

- A **unit** is what the server's replica is: a waiting list and one batch at a time. On a GPU
  the services placed on it (denoiser, text encoder, VAE, ControlNet of the checkpoints it
  hosts) share ONE unit whose batch keys keep services apart, so the GPU runs one batch at a time
  and earliest-deadline-first applies across its services. On a CPU host every replica (micro)
  or per-workflow worker (monolithic) is its own unit, as in `lego serve`, and the units' batches
  run concurrently on the host's shared cores (cpu.py).
- A **lane** is the server's lane: prompts admitted to it, its runners (prompts in flight), its
  backlog and measured parallelism (`WorkRate`) for admission."""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from lego_backend.runtime import scheduler
from lego_backend.services import replica as replica_policy

ENCODE, STEP, CONTROLNET, DECODE, IMAGE_ENCODE = "encode", "step", "controlnet", "decode", "vae_enc"


class Call:
    """A queued service call. It carries exactly the fields of `scheduler.Waiting` (key,
    deadline, arrived, seq, rows), so the waiting list is handed to `pick_batch` as is; and what
    to do when it has run. A request has at most one call outstanding, so each request owns one
    Call and reuses it for every step (no allocation per step)."""
    __slots__ = ("arrived", "deadline", "key", "op", "rows", "seq", "state")

    def __init__(self, state: Any):
        self.state = state
        self.key: Hashable | None = None
        self.deadline = float("inf")
        self.arrived = 0.0
        self.seq = 0
        self.rows = 1
        self.op = ENCODE


class Unit:
    """One replica (or one GPU's shared queue): waiting calls, one batch at a time."""
    __slots__ = ("ahead", "ahead_gen", "busy", "gpu", "linger", "max_batch", "name", "queue",
                 "run_s", "started", "streams", "wake_at")

    def __init__(self, gpu: Gpu, name: Hashable, max_batch: int):
        self.gpu = gpu
        self.name = name
        self.max_batch = max_batch  # the policy's batch limit (rows)
        self.queue: list[Call] = []
        self.busy = False
        self.started = 0.0  # when the running batch started
        self.run_s = 0.0  # EWMA of batch wall time (the replica's; scales its linger)
        self.linger = -1.0  # the replica's linger for that EWMA (-1: not computed yet)
        self.streams = 0  # requests in their sampling loop here (the policy's open_streams)
        self.wake_at = -1.0  # a pending linger wake-up, or -1
        # a run of batches in progress (see Executor): (first batch's start, the pattern's
        # batch seconds, the pattern's ops, batches, the members); None: batch by batch
        self.ahead: tuple[float, tuple[float, ...], tuple[str, ...], int, list[Call]] | None = None
        self.ahead_gen = 0


class Lane:
    """Prompts admitted to one lane of a host: at most `runners` in flight, the rest wait."""
    __slots__ = ("admitted", "name", "prompts", "runners", "running", "unit", "work")

    def __init__(self, name: Hashable, runners: int, unit: Unit | None = None):
        self.name = name
        self.runners = runners
        self.running = 0
        self.prompts: deque[Any] = deque()  # admitted, waiting for a runner
        # requests admitted and not finished, in admission order (a dict: deterministic sums)
        self.admitted: dict[Any, None] = {}
        self.work = scheduler.WorkRate()  # measured parallelism, as the server's lane
        self.unit = unit  # monolithic CPU worker: the one unit all its calls go to


@dataclass(eq=False, slots=True)
class Gpu:
    """One simulated device: a GPU, or a CPU host (then `cores` is set)."""
    index: int
    mem_bytes: int
    max_batch: int  # largest batch any service on it accepts (the policy's limit)
    max_running: int  # prompts in flight on a lane of it (the lane's runners)
    hosts: tuple[str, ...] = ()  # services placed here (checkpoints or workflow kinds)
    cores: Any = None  # cpu.SharedCores on a CPU host; None on a GPU
    units: dict[Hashable, Unit] = field(default_factory=dict)
    lanes: dict[Hashable, Lane] = field(default_factory=dict)
    # LoRAs and ControlNets on it (micro), LRU order: id -> (ready time, bytes)
    adapters: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    fused_lora: dict[str, tuple[str, ...]] = field(default_factory=dict)  # monolithic kind->LoRA
    busy_s: float = 0.0  # standalone seconds of batches run
    step_batches: int = 0
    step_rows: int = 0
    running: int = 0  # prompts in flight on it (all lanes): the router's and "ran alone" view
    waiting: int = 0  # prompts admitted to it and waiting for a runner (all lanes)

    def unit(self, name: Hashable, max_batch: int) -> Unit:
        u = self.units.get(name)
        if u is None:
            u = self.units[name] = Unit(self, name, max_batch)
        return u

    def lane(self, name: Hashable, runners: int) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, runners)
        return lane


class Executor:
    """Drives every unit's batch boundaries on the event loop. `duration(unit, op, calls)` says
    how long a batch takes alone; `finish(calls)` runs the members' continuations. On a GPU a
    batch takes exactly that long; on a CPU host it is a job on the host's shared cores.

    Runs of batches (GPU only): `plan(calls, op)` says what the members will come straight
    back with, batch after batch (a pattern of (op, key) repeated: their next denoiser step;
    or their ControlNet call then their step), and for how many batches. If the policy, asked
    about every boundary of one period of the pattern (the same waiting calls, the members
    back with their next calls), picks exactly the members each time, the batches run back to
    back in ONE event instead of one event and one policy call each. Anything submitted to the
    unit meanwhile ends the run at the next boundary, where the policy is asked as usual, so
    results are the same as batch by batch (tested)."""

    def __init__(self, loop: Any, linger_s: float,
                 duration: Callable[[Unit, str, list[Call]], float],
                 finish: Callable[[list[Call]], None],
                 batch_limit: Callable[[Call], int] | None = None,
                 plan: Callable[[list[Call], str],
                                tuple[tuple[str, ...], tuple[Hashable, ...], int] | None]
                 | None = None,
                 advance: Callable[[list[Call], int, float, tuple[str, ...]], None]
                 | None = None):
        self.loop = loop
        self.linger_s = linger_s
        self._duration = duration
        self._finish = finish
        self._limit = batch_limit
        self._plan = plan  # the members' pattern of calls and how many batches (None: no run)
        self._advance = advance  # (calls, batches done, last boundary, ops): members' state
        self.policy_calls = 0
        self.batches_coalesced = 0

    def submit(self, unit: Unit, call: Call) -> None:
        unit.queue.append(call)
        if unit.ahead is not None:
            self._cut(unit)
        elif not unit.busy:
            self.kick(unit)

    def kick(self, unit: Unit) -> None:
        """A batch boundary: ask the policy; run what it releases or wake up when it says."""
        queue = unit.queue
        if unit.busy or not queue:
            return
        now = self.loop.now
        # looked up at call time so a test (or a policy experiment) can patch the modules;
        # the Calls are the policy's Waiting records (same fields)
        linger = unit.linger
        if linger < 0.0:
            linger = unit.linger = replica_policy.linger_for(self.linger_s, unit.run_s)
        decision = scheduler.pick_batch(queue, now, unit.max_batch,  # type: ignore[arg-type]
                                        unit.streams, linger)
        self.policy_calls += 1
        members = decision.members
        if not members:
            wake = now + decision.wait_s
            if unit.wake_at < now or wake < unit.wake_at:
                unit.wake_at = wake
                self.loop.at(wake, self._wake, unit)
            return
        if len(members) > 1 and self._limit is not None:
            limit = self._limit(queue[members[0]])
            if len(members) > limit:  # the head service's own batch limit is below the unit's
                members = members[:limit]
        if len(members) == len(queue):
            calls = queue
            unit.queue = []
        else:
            picked = set(members)
            calls = [queue[i] for i in members]
            unit.queue = [c for i, c in enumerate(queue) if i not in picked]
        op = calls[0].op
        took = self._duration(unit, op, calls)
        gpu = unit.gpu
        if op == STEP:
            gpu.step_batches += 1
            gpu.step_rows += len(calls)
        unit.busy = True
        unit.started = now
        gpu.busy_s += took
        if gpu.cores is not None:
            gpu.cores.run(took, self._done, unit, calls)
            return
        if self._plan is not None and (op == STEP or op == CONTROLNET):
            plan = self._plan(calls, op)
            if plan is not None and self._run_ahead(unit, calls, took, now, plan):
                return
        self.loop.at(now + took, self._done, unit, calls)

    def _run_ahead(self, unit: Unit, calls: list[Call], took: float, now: float,
                   plan: tuple[tuple[str, ...], tuple[Hashable, ...], int]) -> bool:
        ops, keys, n = plan
        period = len(ops)
        # every batch of the pattern costs the same each time (a first step's one-off costs,
        # already in `took`, are behind it)
        durs = [self._duration(unit, o, calls) for o in ops]
        if durs[0] != took:
            return False
        t, run_s = now, unit.run_s
        for i in range(period):  # the policy, at each boundary of one period
            t += durs[i]
            run_s = replica_policy.batch_time_ewma(run_s, durs[i])
            if not self._same_again(unit, calls, keys[(i + 1) % period], t, run_s):
                return False
        n = self._before_a_deadline_passes(unit, calls, durs, now, n)
        if n < 2:
            return False
        unit.ahead = (now, tuple(durs), ops, n, calls)
        unit.ahead_gen += 1
        end = now
        for k in range(n):  # the same float sums as batch by batch
            end += durs[k % period]
        self.loop.at(end, self._ahead_done, unit, calls, unit.ahead_gen)
        return True

    @staticmethod
    def _before_a_deadline_passes(unit: Unit, calls: list[Call], durs: list[float], now: float,
                                  n: int) -> int:
        """How many of the run's `n` batches start before any waiting call's or member's
        deadline passes: the policy puts calls already past their deadline last, so a decision
        can change when one passes, and the run must end at that boundary."""
        horizon = min((c.deadline for c in (*unit.queue, *calls) if c.deadline >= now),
                      default=float("inf"))
        if horizon == float("inf"):
            return n
        t, period = now, len(durs)
        for k in range(1, n):  # batch k starts at boundary t
            t += durs[(k - 1) % period]
            if t >= horizon:
                return k
        return n

    def _same_again(self, unit: Unit, calls: list[Call], key: Hashable, t: float,
                    run_s: float) -> bool:
        """Ask the policy about a boundary: the calls still waiting (unchanged) and these
        members, back at time t with calls keyed `key`. Nothing in the decision can change
        while nothing new arrives and no deadline passes (the run ends before one does):
        order is by lateness, deadline, then arrival, and a linger only shortens as the
        waiting calls age."""
        others = unit.queue
        seq = max((c.seq for c in others), default=0) + 1
        waiting = [scheduler.Waiting(c.key, c.deadline, c.arrived, c.seq, c.rows)
                   for c in others]
        waiting += [scheduler.Waiting(key, c.deadline, t, seq + i, c.rows)
                    for i, c in enumerate(calls)]
        decision = scheduler.pick_batch(waiting, t, unit.max_batch, unit.streams,
                                        replica_policy.linger_for(self.linger_s, run_s))
        self.policy_calls += 1
        members = decision.members
        if self._limit is not None and len(members) > 1:
            members = members[:self._limit(calls[0])]
        return members == tuple(range(len(others), len(waiting)))

    def _catch_up(self, unit: Unit, calls: list[Call], done: int, last: float) -> None:
        """`done` batches of the run completed, the last at `last`; batch `done` is running:
        the unit's EWMA, counters and the members' state as if run one by one."""
        assert unit.ahead is not None and self._advance is not None
        _, durs, ops, _, _ = unit.ahead
        period = len(durs)
        gpu = unit.gpu
        for k in range(done):
            unit.run_s = replica_policy.batch_time_ewma(unit.run_s, durs[k % period])
        unit.linger = replica_policy.linger_for(self.linger_s, unit.run_s)
        for k in range(1, done + 1):  # batch 0 was counted when it started
            gpu.busy_s += durs[k % period]
            if ops[k % period] == STEP:
                gpu.step_batches += 1
                gpu.step_rows += len(calls)
        self.batches_coalesced += done
        self._advance(calls, done, last, ops)
        unit.ahead = None
        unit.started = last

    def _ahead_done(self, unit: Unit, calls: list[Call], gen: int) -> None:
        if gen != unit.ahead_gen or unit.ahead is None:
            return  # the run was cut short; its last boundary is a regular event
        start, durs, _, n, _ = unit.ahead
        last = start
        for k in range(n - 1):
            last += durs[k % len(durs)]
        self._catch_up(unit, calls, n - 1, last)
        self._done(unit, calls)

    def _cut(self, unit: Unit) -> None:
        """Something new waits: end the run at its next boundary (batches before it stand)."""
        assert unit.ahead is not None
        start, durs, _, n, calls = unit.ahead
        unit.ahead_gen += 1
        now = self.loop.now
        period = len(durs)
        last, nxt, done = start, start + durs[0], 0
        while nxt <= now and done < n - 1:
            done += 1
            last, nxt = nxt, nxt + durs[done % period]
        self._catch_up(unit, calls, done, last)
        self.loop.at(nxt, self._done, unit, calls)

    def _wake(self, unit: Unit) -> None:
        if self.loop.now >= unit.wake_at:
            unit.wake_at = -1.0
        self.kick(unit)

    def _done(self, unit: Unit, calls: list[Call]) -> None:
        unit.run_s = replica_policy.batch_time_ewma(unit.run_s, self.loop.now - unit.started)
        unit.linger = replica_policy.linger_for(self.linger_s, unit.run_s)
        # continuations first, with the unit still marked busy: members resubmit their next
        # step at this instant and must all be waiting when the policy is asked
        self._finish(calls)
        unit.busy = False
        self.kick(unit)

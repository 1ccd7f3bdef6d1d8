"""One simulated run: a list of requests replayed against a cluster in micro or monolithic mode,
driving the server's own policy functions on the simulated clock:

- `admit` (runtime/scheduler.py) gives each request its deadline (and refuses it under strict
  admission), from the standalone latency `LatencyModel` holds for its workflow kind, the lane's
  backlog and the lane's measured parallelism (`WorkRate`);
- `choose_replica` (services/router.py) picks the device a request runs on;
- `desired_replicas` (services/router.py, via placement.py) sizes each service;
- `pick_batch` (runtime/scheduler.py) decides every batch of every unit (gpu.py), with the
  replica's linger rule and batch-time EWMA (services/replica.py).

micro: a device hosts checkpoints' services (text encoder, denoiser, VAE; ControlNets and LoRAs
load on demand), shared by every workflow; denoiser steps batch across requests, LoRAs apply per
batch row. monolithic: a device hosts workers of workflow kinds, each with its own copy of every
model, one prompt at a time per worker (max batch 1).

Device types (the profile's `device_type`): a **GPU** runs one batch at a time, all its services
share one queue, a monolithic GPU runs one prompt at a time and fuses LoRAs into the worker's
weights (ComfyUI's re-patching). A **CPU host** is `lego serve` on a CPU machine: each replica
(micro) or each workflow's worker (monolithic) is its own unit, they all run at once on the
host's shared cores (cpu.py), and each request also spends the profile's measured overheads
(HTTP and compile before, saving after, sampler math after every step) on those cores."""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from lego_backend.config import BackendConfig
from lego_backend.runtime import scheduler
from lego_backend.services import router
from lego_backend.sim.cpu import SharedCores
from lego_backend.sim.engine import EventLoop
from lego_backend.sim.gpu import (
    CONTROLNET,
    DECODE,
    ENCODE,
    IMAGE_ENCODE,
    STEP,
    Call,
    Executor,
    Gpu,
    Lane,
    Unit,
)
from lego_backend.sim.placement import ClusterSpec, Demand, place, replica_counts
from lego_backend.sim.profile import ModelProfile, Profile
from lego_backend.sim.report import RunResult, resident_weight_bytes, run_result
from lego_backend.sim.workload import SimRequest

MODES = ("micro", "monolithic")
CFG_ROWS = 2  # a CFG denoiser (or ControlNet) call: cond + uncond rows (the server's batch_rows)


@dataclass(frozen=True)
class SimConfig:
    mode: str = "micro"
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    slo_scale: float = 5.0  # SLO of a request = this x its standalone latency (as lego bench)
    linger_s: float = 0.004  # the replica's base linger (services/replica.py default)
    target_load: int = 8  # ScalingRule.target_load of micro services (router.py default)
    lora_row_overhead: float = 0.1  # ASSUMED (unless the profile measured it): per-row LoRA
    # costs 10% of a step with LoRA rows
    strict_admission: bool = False  # `lego serve --admission strict`
    route_choices: int = 2  # replicas sampled per routing decision (power of k choices)
    spread: float = 2.0  # micro: replicas per service = this x its GPU share (packing two
    # services per GPU: against 1.0 the same sustained rate at 8-64 GPUs, a larger burst at
    # 8, 6% less rate at 512; docs/scaling.md, finding 3)
    max_adapters: int = 8  # micro: LoRAs/ControlNets cached per GPU (LRU; loads are cheap)
    # what a call's Waiting.deadline carries: "slo" = the prompt's deadline (as the server);
    # "laxity" = deadline minus the standalone work the prompt still has (least slack first)
    deadline: str = "slo"
    drain_slos: float = 3.0  # after the last arrival, run this x the largest SLO, then stop
    seed: int = 0
    # CPU hosts are `lego serve` itself: its defaults for prompts in flight (micro lane
    # runners) and rows per batch (every replica's limit)
    cpu_runners: int = BackendConfig.max_concurrent_prompts
    cpu_max_batch_rows: int = BackendConfig.max_batch
    # where a CPU host's per-step CPU overhead (the profile's overhead_ms.step_cpu) is paid:
    # "batch" = once per denoiser batch (the replica thread's queueing, concatenation and
    # hand-backs), "request" = by every request in it (its own sampler math, guidance and
    # events, under one interpreter lock). Alone both are the same. Since replicas run their
    # forwards on one thread (services/intraop.py), a full bench on a quiet machine is
    # reproduced by "request" (p50 mean |error| 20%) and not by "batch" (36%)
    # (docs/scaling.md, Fidelity)
    step_cpu_per: str = "request"
    # run identical consecutive GPU batches in one event (same results; False = batch by
    # batch, for checking that and for tracing)
    coalesce: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: expected one of {MODES}")
        if self.step_cpu_per not in ("batch", "request"):
            raise ValueError(f"step_cpu_per must be batch or request, not {self.step_cpu_per!r}")


@dataclass(frozen=True)
class Pass:
    """One sampling pass of a request: its model profile, step count and batch key."""
    mp: ModelProfile
    steps: int
    key: Hashable


def standalone_s(profile: Profile, r: SimRequest, lora_fraction: float = 0.1,
                 fused_lora: bool = False) -> float:
    """Seconds a request takes with the device to itself: its forwards at batch 1 plus the
    profile's per-request and per-step overheads."""
    mp = profile.model(r.family)
    o = profile.overhead
    t = o.request_pre + mp.encode(1) + o.request_post
    if r.image_input:
        t += mp.vae_encode(1)
    last = mp
    for kind, steps in ((r.family, r.steps), *r.passes):
        m = profile.model(kind)
        per = (m.step(1) + len(r.controlnets) * (m.controlnet_step(1) + o.controlnet_call)
               + o.step)
        if r.loras and not fused_lora:
            per += m.lora_extra(1, lora_fraction, 1)
        t += steps * per
        last = m
    return t + last.decode(1)


class _Req:
    """Mutable per-request state (a PromptRun's worth for the simulator)."""
    __slots__ = ("alone", "call", "cn_i", "cn_units", "deadline", "gpu", "k_dec", "k_enc",
                 "k_venc", "lane", "lora", "mp", "pass_i", "pass_steps", "passes", "penalty",
                 "per_step", "req", "slo", "solo", "started", "step", "u_enc", "u_step",
                 "u_vae")

    def __init__(self, req: SimRequest, mp: ModelProfile, passes: list[Pass], slo: float,
                 solo: float):
        self.req, self.mp, self.passes, self.slo, self.solo = req, mp, passes, slo, solo
        self.call = Call(self)
        self.deadline = float("inf")
        self.gpu: Gpu | None = None
        self.lane: Lane | None = None
        self.u_enc = self.u_step = self.u_vae = None  # type: Unit | None
        self.cn_units: list[Unit] = []
        self.step = 0
        self.pass_i = 0
        self.pass_steps = passes[0].steps  # steps of the current pass
        self.lora = bool(req.loras)
        self.cn_i = 0
        self.started = 0.0
        self.alone = False
        self.penalty = 0.0  # monolithic GPU: seconds of LoRA re-patching before the first step
        self.k_enc = ("enc", req.checkpoint)
        self.k_venc = ("venc", req.family)
        self.k_dec = ("dec", passes[-1].mp.kind)
        self.per_step = mp.step(1) + len(req.controlnets) * mp.controlnet_step(1)


class Simulation:
    def __init__(self, profile: Profile, cfg: SimConfig, requests: list[SimRequest]):
        self.profile, self.cfg, self.requests = profile, cfg, requests
        self.micro = cfg.mode == "micro"
        self.cpu = profile.device_type == "cpu"
        self.fused_lora = not self.micro and not self.cpu  # ComfyUI-style monolithic GPU
        self.laxity = cfg.deadline == "laxity"
        self.over = profile.overhead
        # per-step overhead: (CPU part charged per request, CPU part per batch, seconds alone)
        per_batch = self.cpu and cfg.step_cpu_per == "batch"
        self._step_cpu_req = 0.0 if per_batch else self.over.step_cpu
        self._step_cpu_batch = self.over.step_cpu if per_batch else 0.0
        self._step_wait = self.over.step - self._step_cpu_batch
        self.loop = EventLoop()
        self.latency = scheduler.LatencyModel()
        self.rng = random.Random(cfg.seed)
        self.exec = Executor(self.loop, cfg.linger_s, self._duration, self._finish,
                             None if self.cpu else self._limit,
                             self._plan if cfg.coalesce else None, self._advance)
        self._seq = 0  # arrival order of calls (Waiting.seq)
        # steps go straight back to the GPU's queue: no per-step CPU work, no ControlNet
        # call in between, no laxity to recompute (the hot path of large GPU studies)
        self._fast_steps = not self.cpu and self.over.step <= 0.0 and not self.laxity
        self.latencies: list[float] = []
        self.latency_of: dict[int, float] = {}  # request index -> seconds (completed only)
        self.met = 0
        self.rejected = 0
        self._steps = {k: _table(m.step, m.max_batch) for k, m in profile.models.items()}
        self.gpus = self._build_gpus()
        self.by_item: dict[str, list[Gpu]] = {}
        for g in self.gpus:
            for item in g.hosts:
                self.by_item.setdefault(item, []).append(g)

    # --- placement ------------------------------------------------------------------------------
    def _item(self, r: SimRequest) -> str:
        return r.checkpoint if self.micro else r.kind

    def _solo(self, r: SimRequest) -> float:
        return standalone_s(self.profile, r, self.cfg.lora_row_overhead, self.fused_lora)

    def _build_gpus(self) -> list[Gpu]:
        span = max((r.arrival for r in self.requests), default=0.0) or 1.0
        conc: dict[str, float] = {}
        fam: dict[str, str] = {}
        cns: dict[str, int] = {}
        for r in self.requests:
            item = self._item(r)
            conc[item] = conc.get(item, 0.0) + self._solo(r) / span
            fam[item] = r.family
            cns[item] = len(r.controlnets)
        demands = []
        for item, c in sorted(conc.items()):
            mp = self.profile.model(fam[item])
            w = mp.weights_bytes
            mem = w["unet"] + w["text_encoder"] + w["vae"]
            if self.micro:  # room for a few on-demand ControlNets and LoRAs
                mem += self.cfg.max_adapters * max(w["controlnet"], w["lora"]) // 4
                act = mp.activation_bytes_per_sample * mp.max_batch
            else:
                mem += cns[item] * w["controlnet"] + w["lora"]
                act = mp.activation_bytes_per_sample
            demands.append(Demand(item, c, c, mem, act))
        counts = replica_counts(demands, self.cfg.cluster.gpus,
                                self.cfg.target_load if self.micro else 1,
                                self.cfg.spread if self.micro else 1.0)
        hosts = place(demands, counts, self.cfg.cluster)
        gpus = []
        for i, h in enumerate(hosts):
            mb = max((self.profile.model(fam[x]).max_batch for x in h), default=1)
            mb = mb if self.micro else 1
            if self.cpu:  # `lego serve`: micro runs its lane's runners, monolithic 1 per worker
                runners = self.cfg.cpu_runners if self.micro else 1
                cores = SharedCores(self.loop, self.profile.speedup)
            else:
                runners, cores = mb, None
            g = Gpu(i, self.cfg.cluster.mem_bytes, mb, runners, tuple(h), cores)
            if not self.cpu:
                g.unit(None, mb)  # the GPU's one queue
            gpus.append(g)
        self.family_of = fam
        self.controlnets_of = cns
        return gpus

    def _attach(self, st: _Req, gpu: Gpu) -> None:
        """The lane and units a request uses on the device it was routed to."""
        r = st.req
        st.gpu = gpu
        if not self.cpu:  # one queue for everything on a GPU, one lane of its prompts
            u = gpu.units[None]
            st.u_enc = st.u_step = st.u_vae = u
            st.cn_units = [u] * len(r.controlnets)
            st.lane = gpu.lane(None, gpu.max_running)
            return
        if not self.micro:  # a monolithic worker: its own lane (1 runner) and its own models
            lane = gpu.lane(r.kind, 1)
            if lane.unit is None:
                lane.unit = gpu.unit(("worker", r.kind), 1)
            st.lane = lane
            st.u_enc = st.u_step = st.u_vae = lane.unit
            st.cn_units = [lane.unit] * len(r.controlnets)
            return
        rows = self.cfg.cpu_max_batch_rows  # micro: one replica per service, as the pool
        mp = st.mp
        st.lane = gpu.lane(None, gpu.max_running)
        st.u_enc = gpu.unit(("text_encoder", r.checkpoint), min(rows, mp.max_batch))
        st.u_step = gpu.unit(("denoiser", r.checkpoint), min(rows, CFG_ROWS * mp.max_batch))
        st.u_vae = gpu.unit(("vae", r.checkpoint), min(rows, mp.max_batch))
        st.cn_units = [gpu.unit(("controlnet", x), min(rows, CFG_ROWS * mp.max_batch))
                       for x in r.controlnets]

    # --- request flow ---------------------------------------------------------------------------
    def _arrive(self, r: SimRequest) -> None:
        mp = self.profile.model(r.family)
        passes = [Pass(mp, r.steps, ("step", r.checkpoint, mp.kind))]
        for kind, steps in r.passes:
            m = self.profile.model(kind)
            passes.append(Pass(m, steps, ("step", r.checkpoint, m.kind)))
        solo = self._solo(r)
        kind = r.kind
        if self.latency.standalone(kind) is None:  # as after the server's warm-up runs
            self.latency.observe(kind, solo, ran_alone=True)
        slo = r.slo_s if r.slo_s is not None else self.cfg.slo_scale * solo
        st = _Req(r, mp, passes, slo, solo)
        self._attach(st, self._route(r))
        self._overhead(st, self.over.request_pre, self.over.request_pre, self._admit, st)

    def _admit(self, st: _Req) -> None:
        lane, gpu = st.lane, st.gpu
        assert lane is not None and gpu is not None
        now = self.loop.now
        strict = self.cfg.strict_admission
        # best effort admits whatever the backlog: skip summing it (a hot path past capacity)
        backlog = scheduler.work_ahead(((o.deadline, o.solo) for o in lane.admitted),
                                       now + st.slo, lane.runners) if strict else 0.0
        adm = scheduler.admit(now, st.slo, self.latency.standalone(st.req.kind) or st.solo,
                              backlog, lane.work.parallelism(lane.runners), strict)
        if not adm.admit:
            self.rejected += 1
            return
        st.deadline = adm.deadline
        lane.admitted[st] = None
        if lane.running < lane.runners:
            self._start(st)
        else:
            lane.prompts.append(st)
            gpu.waiting += 1

    def _route(self, r: SimRequest) -> Gpu:
        cands = self.by_item[self._item(r)]
        if len(cands) == 1:
            return cands[0]
        k = self.cfg.route_choices
        if len(cands) > k:
            # power of k choices: choose_replica ranks adapter affinity above load, so given
            # every replica it would pin a hot LoRA's traffic to the few GPUs holding it
            cands = self.rng.sample(cands, k)
        loads = [router.ReplicaLoad(g.waiting, g.running, True,
                                    sum(x in g.adapters for x in r.loras) if self.micro else 0)
                 for g in cands]
        return cands[router.choose_replica(loads)]

    def _start(self, st: _Req) -> None:
        lane, gpu = st.lane, st.gpu
        assert lane is not None and gpu is not None
        now = self.loop.now
        lane.running += 1
        gpu.running += 1
        lane.work.started(now)
        st.started = now
        st.alone = gpu.running == 1  # the server's "ran alone" (its LatencyModel learns those)
        self._submit(st.u_enc, st.k_enc, ENCODE, st, 1)

    def _submit(self, unit: Any, key: Any, op: str, st: _Req, rows: int) -> None:
        due = st.deadline
        if self.laxity and st.pass_i < len(st.passes):  # past the last pass: the decode
            p = st.passes[st.pass_i]
            due -= (p.steps - st.step) * st.per_step
        call = st.call
        call.key = key
        call.deadline = due
        call.arrived = self.loop.now
        call.seq = self._seq = self._seq + 1
        call.rows = rows
        call.op = op
        self.exec.submit(unit, call)

    def _overhead(self, st: _Req, seconds: float, cpu: float, fn: Callable[..., None],
                  *args: Any) -> None:
        """Per-request time outside the forwards, `seconds` alone: the `cpu` part of it is
        work that shares a CPU host's cores, the rest is waiting (thread hand-offs, I/O) that
        overlaps with everything else. Then `fn(*args)`."""
        if seconds <= 0.0:
            fn(*args)
            return
        gpu = st.gpu
        assert gpu is not None
        if gpu.cores is None or cpu <= 0.0:
            self.loop.at(self.loop.now + seconds, fn, *args)
        elif cpu >= seconds:
            gpu.cores.run(seconds, fn, *args)
        else:
            gpu.cores.run(cpu, self.loop.after, seconds - cpu, fn, *args)

    def _sample(self, st: _Req) -> None:
        """Text (and image) encoded: the first sampling pass starts."""
        r = st.req
        gpu = st.gpu
        assert gpu is not None
        ready = self.loop.now
        if self.micro:  # adapters load on demand; the request's first step waits for them
            for name, comp in ([(x, "lora") for x in r.loras]
                               + [(x, "controlnet") for x in r.controlnets]):
                ready = max(ready, self._adapter(gpu, name, st.mp, comp))
        elif self.fused_lora and r.loras and gpu.fused_lora.get(r.kind, ()) != r.loras:
            st.penalty = st.mp.load_s["lora"] * len(r.loras)  # ComfyUI re-patches the UNet
            gpu.fused_lora[r.kind] = r.loras
        self._open(st)
        if ready > self.loop.now:
            self.loop.at(ready, self._next_step, st)
        else:
            self._next_step(st)

    def _open(self, st: _Req) -> None:
        """The request calls these units at every step of this pass (the policy's streams)."""
        st.u_step.streams += 1  # type: ignore[union-attr]
        if self.cpu:
            for u in st.cn_units:
                if u is not st.u_step:
                    u.streams += 1

    def _close(self, st: _Req) -> None:
        u = st.u_step
        u.streams -= 1  # type: ignore[union-attr]
        if self.cpu:
            for c in st.cn_units:
                if c is not u:
                    c.streams -= 1
        if not u.busy:  # fewer streams to wait for: the policy may release a batch now
            self.exec.kick(u)  # type: ignore[arg-type]

    def _adapter(self, gpu: Gpu, name: str, mp: ModelProfile, comp: str) -> float:
        """When adapter `name` is usable on `gpu` (loading it now if it is not there)."""
        ads = gpu.adapters
        if name in ads:
            ads.move_to_end(name)
            return ads[name][0]
        ads[name] = (self.loop.now + mp.load_s[comp], mp.weights_bytes[comp])
        if len(ads) > self.cfg.max_adapters:  # LRU: placement reserved memory for this many
            ads.popitem(last=False)
        return ads[name][0]

    def _next_step(self, st: _Req) -> None:
        cns = st.req.controlnets
        if cns:
            st.cn_i = 0
            self._submit(st.cn_units[0], ("cn", cns[0], st.passes[st.pass_i].mp.kind),
                         CONTROLNET, st, self._rows)
        else:
            self._submit(st.u_step, st.passes[st.pass_i].key, STEP, st, self._rows)

    def _after_controlnet(self, st: _Req) -> None:
        """The sampler has a ControlNet's residuals: the next ControlNet, or the step."""
        cns = st.req.controlnets
        kind = st.passes[st.pass_i].mp.kind
        if st.cn_i < len(cns):
            self._submit(st.cn_units[st.cn_i], ("cn", cns[st.cn_i], kind), CONTROLNET, st,
                         self._rows)
        else:
            self._submit(st.u_step, st.passes[st.pass_i].key, STEP, st, self._rows)

    @property
    def _rows(self) -> int:
        return CFG_ROWS if self.cpu else 1  # GPU profiles count requests, not rows

    def _after_step(self, st: _Req) -> None:
        """The sampler has the step's result (and has done its math on it)."""
        p = st.passes[st.pass_i]
        if st.step < p.steps:
            self._next_step(st)
            return
        self._close(st)
        st.pass_i += 1
        st.step = 0
        if st.pass_i < len(st.passes):
            st.pass_steps = st.passes[st.pass_i].steps
            self._open(st)
            self._next_step(st)
        else:
            self._submit(st.u_vae, st.k_dec, DECODE, st, 1)

    def _finish(self, calls: list[Call]) -> None:
        o_step = self._step_wait
        fast = self._fast_steps
        now = self.loop.now
        for call in calls:
            st = call.state
            op = call.op
            if op == STEP:
                st.step += 1
                if fast and st.step < st.pass_steps and not st.cn_units:
                    # the next step of the same pass: same key, unit and deadline; the unit
                    # (the GPU's one queue) is still busy, so it is asked when this returns
                    call.arrived = now
                    call.seq = self._seq = self._seq + 1
                    st.u_step.queue.append(call)
                    continue
                if o_step > 0.0:
                    self._overhead(st, o_step, self._step_cpu_req, self._after_step, st)
                else:
                    self._after_step(st)
            elif op == CONTROLNET:
                st.cn_i += 1
                o_cn = self.over.controlnet_call
                if o_cn > 0.0:
                    self._overhead(st, o_cn, o_cn, self._after_controlnet, st)
                else:
                    self._after_controlnet(st)
            elif op == ENCODE:
                if st.req.image_input:
                    self._submit(st.u_vae, st.k_venc, IMAGE_ENCODE, st, 1)
                else:
                    self._sample(st)
            elif op == IMAGE_ENCODE:
                self._sample(st)
            else:
                self._overhead(st, self.over.request_post, self.over.request_post, self._done,
                               st)

    def _done(self, st: _Req) -> None:
        now = self.loop.now
        lane, gpu = st.lane, st.gpu
        assert lane is not None and gpu is not None
        latency = now - st.req.arrival
        self.latencies.append(latency)
        self.latency_of[st.req.index] = latency
        self.met += latency <= st.slo
        kind = st.req.kind
        alone = st.alone and gpu.running == 1
        lane.running -= 1
        gpu.running -= 1
        del lane.admitted[st]
        lane.work.finished(now, self.latency.standalone(kind))
        self.latency.observe(kind, now - st.started, alone)
        if lane.prompts:
            gpu.waiting -= 1
            self._start(lane.prompts.popleft())

    # --- service times --------------------------------------------------------------------------
    def _duration(self, unit: Unit, op: str, calls: list[Call]) -> float:
        st = calls[0].state
        n = len(calls)
        if op == STEP:
            mp = st.passes[st.pass_i].mp
            t = self._steps[mp.kind][n]
            if self.fused_lora:
                for c in calls:
                    t += c.state.penalty
                    c.state.penalty = 0.0
            else:
                lora_rows = st.lora if n == 1 else sum(c.state.lora for c in calls)
                if lora_rows:
                    t += mp.lora_extra(lora_rows, self.cfg.lora_row_overhead, n)
            return t + self._step_cpu_batch
        if op == CONTROLNET:
            return st.passes[st.pass_i].mp.controlnet_step(n)
        if op == ENCODE:
            return st.mp.encode(n)
        if op == IMAGE_ENCODE:
            return st.mp.vae_encode(n)
        return st.passes[-1].mp.decode(n)

    def _plan(self, calls: list[Call], op: str
              ) -> tuple[tuple[str, ...], tuple[Hashable, ...], int] | None:
        """What the members of a batch starting now come straight back with, and for how many
        batches (see Executor): their next steps of this pass (a step batch of members with
        no ControlNet), or their step then their next ControlNet call (a ControlNet batch of
        members with one ControlNet, the same step key). None: no run."""
        if not self._fast_steps:
            return None
        st0 = calls[0].state
        step_key = st0.passes[st0.pass_i].key
        left = 1 << 30
        cns = 0 if op == STEP else 1
        for c in calls:
            st = c.state
            if len(st.cn_units) != cns or st.penalty or st.passes[st.pass_i].key != step_key:
                return None
            left = min(left, st.pass_steps - st.step)
        if op == STEP:
            return ((STEP,), (step_key,), left) if left > 1 else None
        return (CONTROLNET, STEP), (calls[0].key, step_key), 2 * left

    def _advance(self, calls: list[Call], done: int, last: float, ops: tuple[str, ...]
                 ) -> None:
        """Members of a run are `done` batches in (the run's pattern of `ops`), the last
        boundary at `last`: their state as if each batch had been run and resubmitted."""
        cycles, phase = divmod(done, len(ops))
        for c in calls:
            st = c.state
            st.step += cycles
            c.arrived = last
            c.seq = self._seq = self._seq + 1
            if len(ops) > 1:  # ControlNet then step: which of the two is running now
                kind = st.passes[st.pass_i].mp.kind
                if ops[phase] == CONTROLNET:
                    st.cn_i = 0
                    c.op, c.key = CONTROLNET, ("cn", st.req.controlnets[0], kind)
                else:
                    st.cn_i = 1
                    c.op, c.key = STEP, st.passes[st.pass_i].key

    @staticmethod
    def _limit(call: Call) -> int:
        return call.state.mp.max_batch

    # --- running and reporting ------------------------------------------------------------------
    def run(self) -> RunResult:
        began = time.perf_counter()
        for r in self.requests:
            self.loop.at(r.arrival, self._arrive, r)
        last = max((r.arrival for r in self.requests), default=0.0)
        worst = max(((r.slo_s if r.slo_s is not None else self.cfg.slo_scale * self._solo(r))
                     for r in self.requests), default=0.0)
        self.loop.run(until=last + self.cfg.drain_slos * worst)
        return self._result(time.perf_counter() - began, last)

    def _result(self, wall: float, last: float) -> RunResult:
        resident = resident_weight_bytes(self.gpus, self.profile, self.family_of,
                                         self.controlnets_of, self.micro)
        return run_result(self.latencies, self.met, len(self.requests), self.rejected,
                          self.gpus, resident, max(self.loop.now, last, 1e-9),
                          self.loop.events_run, self.exec.policy_calls, wall)


def _table(fn: Callable[[int], float], max_batch: int) -> list[float]:
    """fn(0..max_batch) looked up instead of interpolated on every batch."""
    return [0.0] + [fn(b) for b in range(1, max_batch + 1)]


def simulate(profile: Profile, cfg: SimConfig, requests: list[SimRequest]) -> RunResult:
    return Simulation(profile, cfg, requests).run()

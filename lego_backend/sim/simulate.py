"""One simulated run: a list of requests replayed against a cluster in micro or monolithic mode,
driving the server's own policy functions on the simulated clock:

- `admit` (runtime/scheduler.py) gives each request its deadline (and refuses it under strict
  admission), from the standalone latency `LatencyModel` holds for its workflow kind;
- `choose_replica` (services/router.py) picks the GPU a request runs on;
- `desired_replicas` (services/router.py, via placement.py) sizes each service;
- `pick_batch` (runtime/scheduler.py) decides every batch on every GPU (gpu.py).

micro: a GPU hosts checkpoints' services (text encoder, denoiser, VAE; ControlNets and LoRAs
load on demand), shared by every workflow; denoiser steps batch across requests, LoRAs apply per
batch row. monolithic: a GPU hosts workers of workflow kinds, each with its own copy of every
model, one prompt at a time per GPU (max batch 1), LoRAs fused into the worker's weights."""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from lego_backend.runtime import scheduler
from lego_backend.services import router
from lego_backend.sim.engine import EventLoop
from lego_backend.sim.gpu import CONTROLNET, DECODE, ENCODE, STEP, Call, Executor, Gpu
from lego_backend.sim.placement import ClusterSpec, Demand, place, replica_counts
from lego_backend.sim.profile import ModelProfile, Profile
from lego_backend.sim.report import RunResult, resident_weight_bytes, run_result
from lego_backend.sim.workload import SimRequest

MODES = ("micro", "monolithic")


@dataclass(frozen=True)
class SimConfig:
    mode: str = "micro"
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    slo_scale: float = 5.0  # SLO of a request = this x its standalone latency (as lego bench)
    linger_s: float = 0.004  # the replica's default linger (services/replica.py)
    target_load: int = 8  # ScalingRule.target_load of micro services (router.py default)
    lora_row_overhead: float = 0.1  # ASSUMED: per-row LoRA costs 10% of a step with LoRA rows
    strict_admission: bool = False  # `lego serve --admission strict`
    route_choices: int = 2  # replicas sampled per routing decision (power of k choices)
    spread: float = 2.0  # micro: replicas per service = this x its GPU share (packing two
    # services per GPU evens out load: +40% sustained rate at 8 GPUs, +5% at 64, vs 1.0)
    max_adapters: int = 8  # micro: LoRAs/ControlNets cached per GPU (LRU; loads are cheap)
    # what a call's Waiting.deadline carries: "slo" = the prompt's deadline (as the server);
    # "laxity" = deadline minus the standalone work the prompt still has (least slack first)
    deadline: str = "slo"
    drain_slos: float = 3.0  # after the last arrival, run this x the largest SLO, then stop
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: expected one of {MODES}")


class _Req:
    """Mutable per-request state (a PromptRun's worth for the simulator)."""
    __slots__ = (
        "cn_i",
        "deadline",
        "gpu",
        "k_dec",
        "k_enc",
        "k_step",
        "mp",
        "penalty",
        "per_step",
        "req",
        "slo",
        "solo",
        "step",
    )

    def __init__(self, req: SimRequest, mp: ModelProfile, slo: float, solo: float):
        self.req, self.mp, self.slo, self.solo = req, mp, slo, solo
        self.deadline = float("inf")
        self.gpu: Gpu | None = None
        self.step = 0
        self.cn_i = 0
        self.penalty = 0.0  # monolithic: seconds of LoRA re-patching before the first step
        self.k_enc = ("enc", req.checkpoint)
        self.k_step = ("step", req.checkpoint)
        self.k_dec = ("dec", req.family)
        self.per_step = mp.step(1) + len(req.controlnets) * mp.controlnet_step(1)


class Simulation:
    def __init__(self, profile: Profile, cfg: SimConfig, requests: list[SimRequest]):
        self.profile, self.cfg, self.requests = profile, cfg, requests
        self.micro = cfg.mode == "micro"
        self.laxity = cfg.deadline == "laxity"
        self.loop = EventLoop()
        self.latency = scheduler.LatencyModel()
        self.rng = random.Random(cfg.seed)
        self.exec = Executor(self.loop, cfg.linger_s, self._duration, self._finish,
                             self._limit)
        self._seq = itertools.count()  # arrival order of calls (Waiting.seq)
        self.latencies: list[float] = []
        self.met = 0
        self.rejected = 0
        self.gpus = self._build_gpus()
        self.by_item: dict[str, list[Gpu]] = {}
        for g in self.gpus:
            for item in g.hosts:
                self.by_item.setdefault(item, []).append(g)

    # --- placement ------------------------------------------------------------------------------
    def _item(self, r: SimRequest) -> str:
        return r.checkpoint if self.micro else r.kind

    def _build_gpus(self) -> list[Gpu]:
        span = max((r.arrival for r in self.requests), default=0.0) or 1.0
        conc: dict[str, float] = {}
        fam: dict[str, str] = {}
        cns: dict[str, int] = {}
        for r in self.requests:
            item = self._item(r)
            mp = self.profile.model(r.family)
            conc[item] = conc.get(item, 0.0) + mp.standalone(r.steps, len(r.controlnets)) / span
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
            gpus.append(Gpu(i, self.cfg.cluster.mem_bytes, mb, mb, tuple(h)))
        self.family_of = fam
        return gpus

    # --- request flow ---------------------------------------------------------------------------
    def _arrive(self, r: SimRequest) -> None:
        mp = self.profile.model(r.family)
        solo = mp.standalone(r.steps, len(r.controlnets))
        kind = r.kind
        if self.latency.standalone(kind) is None:  # as after the server's warm-up runs
            self.latency.observe(kind, solo, ran_alone=True)
        st = _Req(r, mp, self.cfg.slo_scale * solo, solo)
        gpu = self._route(r)
        lanes = gpu.max_running
        adm = scheduler.admit(self.loop.now, st.slo, self.latency.standalone(kind) or solo,
                              gpu.backlog_s, lanes, self.cfg.strict_admission)
        if not adm.admit:
            self.rejected += 1
            return
        st.deadline = adm.deadline
        st.gpu = gpu
        gpu.backlog_s += solo
        if gpu.running < gpu.max_running:
            self._start(st)
        else:
            gpu.prompts.append(st)

    def _route(self, r: SimRequest) -> Gpu:
        cands = self.by_item[self._item(r)]
        k = self.cfg.route_choices
        if len(cands) > k:
            # power of k choices: choose_replica ranks adapter affinity above load, so given
            # every replica it would pin a hot LoRA's traffic to the few GPUs holding it
            cands = self.rng.sample(cands, k)
        loads = [router.ReplicaLoad(len(g.prompts), g.running, True,
                                    sum(x in g.adapters for x in r.loras) if self.micro else 0)
                 for g in cands]
        return cands[router.choose_replica(loads)]

    def _start(self, st: _Req) -> None:
        gpu = st.gpu
        assert gpu is not None
        gpu.running += 1
        self._submit(gpu, st.k_enc, ENCODE, st)

    def _submit(self, gpu: Gpu, key: Any, op: str, st: _Req) -> None:
        now = self.loop.now
        due = st.deadline
        if self.laxity:
            due -= (st.req.steps - st.step) * st.per_step
        gpu.queue.append(Call(scheduler.Waiting(key, due, now, next(self._seq)), op, st))
        if not gpu.busy:
            self.exec.kick(gpu)

    def _after_encode(self, gpu: Gpu, st: _Req) -> None:
        gpu.streams += 1
        r = st.req
        ready = self.loop.now
        if self.micro:  # adapters load on demand; the request's first step waits for them
            for name, comp in ([(x, "lora") for x in r.loras]
                               + [(x, "controlnet") for x in r.controlnets]):
                ready = max(ready, self._adapter(gpu, name, st.mp, comp))
        elif r.loras and gpu.fused_lora.get(r.kind, ()) != r.loras:
            st.penalty = st.mp.load_s["lora"] * len(r.loras)  # ComfyUI re-patches the UNet
            gpu.fused_lora[r.kind] = r.loras
        if ready > self.loop.now:
            self.loop.at(ready, self._next_step, gpu, st)
        else:
            self._next_step(gpu, st)

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

    def _next_step(self, gpu: Gpu, st: _Req) -> None:
        st.cn_i = 0
        if st.req.controlnets:
            self._submit(gpu, ("cn", st.req.controlnets[0]), CONTROLNET, st)
        else:
            self._submit(gpu, st.k_step, STEP, st)

    def _finish(self, gpu: Gpu, calls: list[Call]) -> None:
        for call in calls:
            st = call.state
            op = call.op
            if op == STEP:
                st.step += 1
                if st.step < st.req.steps:
                    self._next_step(gpu, st)
                else:
                    gpu.streams -= 1
                    self._submit(gpu, st.k_dec, DECODE, st)
            elif op == CONTROLNET:
                st.cn_i += 1
                cns = st.req.controlnets
                if st.cn_i < len(cns):
                    self._submit(gpu, ("cn", cns[st.cn_i]), CONTROLNET, st)
                else:
                    self._submit(gpu, st.k_step, STEP, st)
            elif op == ENCODE:
                self._after_encode(gpu, st)
            else:
                self._done(gpu, st)

    def _done(self, gpu: Gpu, st: _Req) -> None:
        latency = self.loop.now - st.req.arrival
        self.latencies.append(latency)
        self.met += latency <= st.slo
        gpu.running -= 1
        gpu.backlog_s -= st.solo
        if gpu.prompts:
            self._start(gpu.prompts.popleft())

    # --- service times --------------------------------------------------------------------------
    def _duration(self, gpu: Gpu, op: str, calls: list[Call]) -> float:
        mp: ModelProfile = calls[0].state.mp
        n = len(calls)
        if op == STEP:
            t = mp.step(n)
            if self.micro:
                if any(c.state.req.loras for c in calls):
                    t *= 1.0 + self.cfg.lora_row_overhead
            else:
                for c in calls:
                    t += c.state.penalty
                    c.state.penalty = 0.0
            return t
        if op == CONTROLNET:
            return mp.controlnet_step(n)
        if op == ENCODE:
            return mp.encode(n)
        return mp.decode(n)

    def _limit(self, gpu: Gpu, call: Call) -> int:
        return call.state.mp.max_batch if self.micro else 1

    # --- running and reporting ------------------------------------------------------------------
    def run(self) -> RunResult:
        began = time.perf_counter()
        for r in self.requests:
            self.loop.at(r.arrival, self._arrive, r)
        last = max((r.arrival for r in self.requests), default=0.0)
        worst = max((self.profile.model(r.family).standalone(r.steps, len(r.controlnets))
                     for r in self.requests), default=0.0)
        self.loop.run(until=last + self.cfg.drain_slos * self.cfg.slo_scale * worst)
        return self._result(time.perf_counter() - began, last)

    def _result(self, wall: float, last: float) -> RunResult:
        return run_result(self.latencies, self.met, len(self.requests), self.rejected,
                          self.gpus, resident_weight_bytes(self.gpus, self.profile,
                                                           self.family_of, self.micro),
                          max(self.loop.now, last, 1e-9), self.loop.events_run,
                          self.exec.policy_calls, wall)


def simulate(profile: Profile, cfg: SimConfig, requests: list[SimRequest]) -> RunResult:
    return Simulation(profile, cfg, requests).run()

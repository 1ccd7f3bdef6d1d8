"""Backend configuration: frozen, built from CLI flags (or tests) in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    """Where `lego serve` and `lego run` keep models, inputs and outputs unless told otherwise:
    $LEGO_HOME, else ~/.lego-diffusion (one store shared by every command, wherever it runs)."""
    home = os.environ.get("LEGO_HOME")
    return Path(home).expanduser().resolve() if home else Path.home() / ".lego-diffusion"


@dataclass(frozen=True)
class BackendConfig:
    models_dir: Path = field(default_factory=lambda: default_home() / "models")
    output_dir: Path = field(default_factory=lambda: default_home() / "output")
    input_dir: Path = field(default_factory=lambda: default_home() / "input")
    temp_dir: Path = field(default_factory=lambda: default_home() / "temp")
    data_dir: Path = field(default_factory=lambda: default_home() / "data")  # users, settings
    extra_model_paths: tuple[Path, ...] = ()  # extra_model_paths.yaml files
    torch_threads: int | None = None  # None = torch default
    preview_method: str = "auto"  # "none" | "auto" | "latent2rgb"
    preview_interval_s: float = 0.2  # minimum time between two previews of one node
    history_max: int = 10000  # finished prompts kept (memory and lego.db), oldest pruned first
    # Queue and history in <data_dir>/lego.db (SQLite, WAL): a restarted server keeps its history
    # and runs what was left queued or running. `lego run` (one prompt, no server) sets False.
    durable: bool = True
    on_restart: str = "requeue"  # prompts left unfinished: "requeue" | "fail" (with a reason)
    # A prompt cut short by a crash (a dead worker process, a killed server) is retried up to
    # this many times, then fails with an execution_error saying why.
    max_retries: int = 2
    max_queue: int = 1000  # pending prompts in all; more get HTTP 429 with Retry-After
    max_queue_per_client: int = 200  # pending prompts of one client_id
    max_pixels: int = 64 * 1024 * 1024  # width x height x batch of one image or latent
    # Prompts executing at once. Their service calls interleave, and denoiser steps of different
    # prompts batch together; 1 = ComfyUI's one-prompt-at-a-time executor.
    max_concurrent_prompts: int = 16
    max_batch: int = 16  # rows per denoiser batch
    slo_scale: float = 5.0  # default deadline: slo_scale x the workflow's standalone latency
    admission: str = "besteffort"  # "strict": refuse (429) prompts predicted to miss their SLO
    lora_async_steps: int = 0  # K: a LoRA'd request may denoise K steps before its LoRA loads
    # (service kind, min replicas, max replicas); kinds not listed run one replica
    replicas: tuple[tuple[str, int, int], ...] = ()
    replica_runtime: str = "thread"  # "thread" (this process) | "process" (worker processes)
    mode: str = "micro"  # "micro" | "monolithic" (the baseline: one worker per workflow kind)
    model_memory: int | None = None  # bytes of resident weights before idle services unload

    @property
    def user_dir(self) -> Path:
        return self.data_dir / "user"

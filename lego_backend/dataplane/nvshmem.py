"""NVSHMEM capability check (GPU-to-GPU transport through symmetric memory, `nvshmem4py`).

`nvshmem.core` is imported only here and only when asked for (`pip install
lego-diffusion[nvshmem]`). Asking for NVSHMEM where it cannot run is not an error: the check
logs one line saying why and which transport is used instead, and returns a status with
`available=False`. Three ways it can fail, each with its own reason:
- the package is missing;
- the package is there but no CUDA driver or GPU is;
- initialisation fails (bootstrap, driver or library mismatch, ...)."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("lego.dataplane")


@dataclass(frozen=True)
class NvshmemStatus:
    available: bool
    reason: str  # "ready", "package missing", "no CUDA driver or GPU", "init failed"
    detail: str = ""


def _import(name: str) -> Any:
    return importlib.import_module(name)


def _gpu_count() -> int:
    """CUDA devices this process sees (0 without a driver)."""
    try:
        system = _import("cuda.core.experimental").system
        return int(system.num_devices)
    except Exception:  # noqa: BLE001 - no cuda-python or no driver: ask torch instead
        import torch
        return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _init(core: Any) -> None:
    """A one-process NVSHMEM job on the current GPU (the unique-id bootstrap needs no MPI)."""
    device_cls = _import("cuda.core.experimental").Device
    dev = device_cls(0)
    dev.set_current()
    uid = core.get_unique_id()
    core.init(device=dev, uid=uid, rank=0, nranks=1, initializer_method="uid")


def detect_nvshmem(fallback: str = "ray") -> NvshmemStatus:
    """Can this process use NVSHMEM? Never raises; logs one line when it cannot."""
    try:
        core = _import("nvshmem.core")
    except Exception as exc:  # noqa: BLE001 - a broken install may raise anything on import
        return _unavailable("package missing",
                            f"{exc} (pip install lego-diffusion[nvshmem])", fallback)
    try:
        gpus = _gpu_count()
    except Exception as exc:  # noqa: BLE001 - any driver failure means no GPU path
        return _unavailable("no CUDA driver or GPU", str(exc), fallback)
    if gpus == 0:
        return _unavailable("no CUDA driver or GPU", "0 CUDA devices visible", fallback)
    try:
        _init(core)
    except Exception as exc:  # noqa: BLE001 - never crash: fall back
        return _unavailable("init failed", f"{type(exc).__name__}: {exc}", fallback)
    log.info("NVSHMEM ready: GPU-to-GPU hops may use symmetric memory")
    return NvshmemStatus(True, "ready")


def _unavailable(reason: str, detail: str, fallback: str) -> NvshmemStatus:
    log.warning("NVSHMEM requested but unavailable (%s: %s); GPU tensors move by %s instead",
                reason, detail, fallback)
    return NvshmemStatus(False, reason, detail)

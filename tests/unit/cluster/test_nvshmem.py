"""NVSHMEM requested where it cannot run: one clear log line, the fallback, never a crash. The
three failure branches, on CPU, with the imports replaced."""
from __future__ import annotations

import logging
import types

import pytest

from lego_backend.dataplane import nvshmem


def _records(caplog):
    return [r for r in caplog.records if r.name == "lego.dataplane"]


def _fake_modules(monkeypatch, core, cuda_core):
    def fake_import(name):
        table = {"nvshmem.core": core, "cuda.core.experimental": cuda_core}
        value = table[name]
        if isinstance(value, BaseException):
            raise value
        return value
    monkeypatch.setattr(nvshmem, "_import", fake_import)


def test_package_missing(monkeypatch, caplog):
    _fake_modules(monkeypatch, ModuleNotFoundError("No module named 'nvshmem'"),
                  ModuleNotFoundError("No module named 'cuda'"))
    with caplog.at_level(logging.INFO, "lego.dataplane"):
        status = nvshmem.detect_nvshmem()
    assert (status.available, status.reason) == (False, "package missing")
    lines = _records(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "pip install lego-diffusion[nvshmem]" in lines[0].getMessage()
    assert "move by ray instead" in lines[0].getMessage()


def test_package_present_but_no_driver(monkeypatch, caplog):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    core = types.SimpleNamespace(init=lambda **kw: pytest.fail("init must not be tried"))
    # cuda-python without a driver fails on touching the system; torch finds no GPU either.
    broken = types.SimpleNamespace()
    _fake_modules(monkeypatch, core, broken)
    with caplog.at_level(logging.INFO, "lego.dataplane"):
        status = nvshmem.detect_nvshmem(fallback="shm")
    assert (status.available, status.reason) == (False, "no CUDA driver or GPU")
    lines = _records(caplog)
    assert len(lines) == 1 and "move by shm instead" in lines[0].getMessage()


def test_init_failure(monkeypatch, caplog):
    calls = []

    def init(**kw):
        calls.append(kw)
        raise RuntimeError("nvshmem bootstrap failed: no IB devices")

    core = types.SimpleNamespace(init=init, get_unique_id=lambda: b"uid")
    device = types.SimpleNamespace(set_current=lambda: None)
    cuda_core = types.SimpleNamespace(system=types.SimpleNamespace(num_devices=2),
                                      Device=lambda index: device)
    _fake_modules(monkeypatch, core, cuda_core)
    with caplog.at_level(logging.INFO, "lego.dataplane"):
        status = nvshmem.detect_nvshmem()
    assert (status.available, status.reason) == (False, "init failed")
    assert "no IB devices" in status.detail
    assert calls and calls[0]["nranks"] == 1 and calls[0]["initializer_method"] == "uid"
    lines = _records(caplog)
    assert len(lines) == 1 and "init failed" in lines[0].getMessage()


def test_ready_when_everything_initialises(monkeypatch, caplog):
    core = types.SimpleNamespace(init=lambda **kw: None, get_unique_id=lambda: b"uid")
    device = types.SimpleNamespace(set_current=lambda: None)
    cuda_core = types.SimpleNamespace(system=types.SimpleNamespace(num_devices=1),
                                      Device=lambda i: device)
    _fake_modules(monkeypatch, core, cuda_core)
    status = nvshmem.detect_nvshmem()
    assert status.available and status.reason == "ready"


def test_real_detection_never_raises():
    status = nvshmem.detect_nvshmem()  # whatever this machine has
    assert status.reason in ("ready", "package missing", "no CUDA driver or GPU", "init failed")

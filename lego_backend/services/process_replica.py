"""A replica in its own worker process (per-model scaling on one host). The parent keeps the
queue and the batching policy; the worker holds the weights and runs batches. Tensors cross by
shared memory (dataplane/shm.py); the pipe carries calls, handles and small stats. A worker that
dies is restarted and the batch retried, up to `max_restarts` times in a row; then the batch's
callers get a ReplicaDeadError saying how often and how the worker died."""
from __future__ import annotations

import os
import signal
import threading
import traceback
from typing import Any

import torch.multiprocessing as tmp

from lego_backend.dataplane.shm import from_wire, to_wire
from lego_backend.dataplane.store import TensorStore
from lego_backend.errors import ReplicaDeadError
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec
from lego_backend.services.replica import Replica

POLL_S = 0.2  # how often a waiting parent checks that its worker is alive


def worker_main(kind: str, spec: ServiceSpec, conn: Any, threads: int | None) -> None:
    """The worker process: build the service, answer requests until told to stop."""
    import torch

    from lego_backend.services.pool import DEFAULT_FACTORIES

    if threads:
        torch.set_num_threads(threads)
    store = TensorStore()
    service = DEFAULT_FACTORIES[kind](spec, store)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        op = message[0]
        try:
            if op == "stop":
                service.close()
                conn.send(("ok", None, _stats(service)))
                return
            if op == "unload":
                service.unload()
                conn.send(("ok", None, _stats(service)))
                continue
            calls = [ServiceCall(name, from_wire(args, store)) for name, args in message[1]]
            results = service.run_batch(calls)
            wire = to_wire(results, store)
            for call in calls:  # the worker's references to inputs end here
                for value in _handles(call.args):
                    store.release(value)
            conn.send(("ok", wire, _stats(service)))
            for value in _handles(results):
                store.release(value)
        except Exception as exc:  # noqa: BLE001 -- report to the caller; the worker stays up
            conn.send(("err", f"{type(exc).__name__}: {exc}", traceback.format_exc(), None))


def _handles(value: Any) -> list[Any]:
    from lego_backend.dataplane.store import iter_handles
    return list(iter_handles(value))


def _stats(service: ModelService) -> dict[str, Any]:
    return {"loaded": service.loaded, "resident_bytes": service.resident_bytes(),
            "pid": os.getpid()}


class ProcessReplica(Replica):
    def __init__(self, service: ModelService, max_batch: int = 16, linger_s: float = 0.004,
                 threads: int | None = None, max_restarts: int = 3):
        self._threads = threads
        self.max_restarts = max_restarts
        self.restarts = 0
        self._stats: dict[str, Any] = {"loaded": False, "resident_bytes": 0, "pid": None}
        self._proc_lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._spec = service.spec
        self._start_worker()
        super().__init__(service, max_batch, linger_s)
        self.runtime = "process"

    def _start_worker(self) -> None:
        ctx = tmp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker_main, daemon=True, name=f"lego-{self._spec.kind}",
                           args=(self._spec.kind, self._spec, child, self._threads))
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._stats = {"loaded": False, "resident_bytes": 0, "pid": proc.pid}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _request(self, message: tuple[Any, ...]) -> Any:
        """Send one request, wait for the answer; ReplicaDeadError if the worker died."""
        try:
            self._conn.send(message)
        except OSError as exc:  # broken pipe: the worker is gone
            raise ReplicaDeadError(f"worker process {self._proc.pid} {_how(self._proc)}") from exc
        while not self._conn.poll(POLL_S):
            if not self._proc.is_alive():
                raise ReplicaDeadError(f"worker process {self._proc.pid} {_how(self._proc)}")
        try:
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ReplicaDeadError(f"worker process {self._proc.pid} {_how(self._proc)}") from exc
        if reply[0] == "err":
            raise RuntimeError(reply[1])
        self._stats = reply[2]
        return reply[1]

    def _execute(self, calls: list[ServiceCall]) -> list[Any]:
        wire = [(c.op, to_wire(c.args, self.service.store)) for c in calls]
        failures = 0
        while True:
            with self._proc_lock:
                try:
                    results = self._request(("run", wire))
                    return from_wire(results, self.service.store)
                except ReplicaDeadError as death:
                    failures += 1
                    self.restarts += 1
                    self._start_worker()  # a new worker reloads the weights
                    if failures > self.max_restarts:  # the next batch gets the fresh worker
                        raise ReplicaDeadError(
                            f"{self.service.spec.label}: the worker process died {failures} "
                            f"times running this batch (last: {death}); not retried again "
                            f"(max retries {self.max_restarts})") from None

    @property
    def loaded(self) -> bool:
        return bool(self._stats.get("loaded"))

    def resident_bytes(self) -> int:
        return int(self._stats.get("resident_bytes") or 0)

    def describe(self) -> dict[str, Any]:
        return {"runtime": "process", "pid": self.pid, "restarts": self.restarts}

    def unload_if_idle(self) -> int:
        if not self.idle or not self.loaded:
            return 0
        freed = self.resident_bytes()
        with self._proc_lock:
            try:
                self._request(("unload",))
            except ReplicaDeadError:
                return 0
        return freed

    def close(self) -> None:
        super().close()
        with self._proc_lock:
            try:
                if self._proc.is_alive():
                    self._conn.send(("stop",))
                    self._proc.join(timeout=10)
            except (OSError, EOFError):
                pass
            if self._proc.is_alive():
                self._proc.kill()

    def kill_worker(self) -> None:
        """Kill the worker process for real (fault tests)."""
        self._proc.kill()
        self._proc.join(timeout=10)


def _how(proc: Any) -> str:
    """'was killed by SIGKILL' / 'exited with code 1' for a worker that died."""
    proc.join(timeout=1)  # the pipe may break a moment before the exit code is known
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"

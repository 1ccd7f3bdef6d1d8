"""A real local Ray cluster for the cluster tests: a head and a second node, each started with
`ray start` on its own loopback address (127.0.0.2 and 127.0.0.3: Ray rewrites 127.0.0.1 to the
machine's network address, other loopback addresses it keeps), 1 CPU, an 80 MB object store, no
dashboard, and a custom resource
naming it (`node_a`, `node_b`) so tests can put services on chosen nodes. Started once for
this package; at the end exactly the processes of this cluster are stopped (found by its own temp
dir, and their children), never other Ray processes on the machine.

Two system settings differ from Ray's defaults: results over 1 KiB are kept in the producing
node's object store (Ray's default is 100 KiB; the demo model's tensors are small, a real
model's are not, and only results in a node's object store can die with it), and a node that
stops answering is declared dead after about 5 s instead of about 20 s, so the node-death test
stays short. `second_node` can kill the second node for real and start it again."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, SECOND_IP = "127.0.0.2", "127.0.0.3"
SYSTEM_CONFIG = {"max_direct_call_object_size": 1024, "health_check_period_ms": 1000,
                 "health_check_failure_threshold": 5}
NODE_RESOURCES = {"text_encoder": "node_a", "denoiser": "node_b", "vae": "node_a"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, cmd)
    return out


def cluster_pids(marker: str) -> list[int]:
    """Processes of the cluster whose temp dir is `marker`, with all their descendants."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if marker in cmd}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        grew = bool(kids)
        found |= kids
    return sorted(found)


def _stop(marker: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = cluster_pids(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()
                    and "zombie" not in _state(p)]
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
    return next((line for line in status.splitlines() if line.startswith("State:")), "").lower()


def _start(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run([RAY, "start", *args], check=False, env=env, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


class SecondNode:
    """The cluster's second node (`node_b`): its processes found by address, killed for real,
    and started again with the same address and resources."""

    def __init__(self, head: str, marker: str, env: dict[str, str], common: list[str]):
        self.head, self.marker, self.env, self.common = head, marker, env, common

    def start(self) -> None:
        _start(["--address", self.head, "--node-ip-address", SECOND_IP,
                "--dashboard-agent-listen-port", str(_free_port()),
                "--resources", json.dumps({"node_b": 1}), *self.common], self.env)

    def pids(self) -> list[int]:
        """Its raylet and agents (their command lines name its address) and their children
        (the worker processes running its actors)."""
        procs = _processes()
        ours = set(cluster_pids(self.marker))
        found = {pid for pid in ours if SECOND_IP in procs[pid][1]
                 and "pytest" not in procs[pid][1]}
        grew = True
        while grew:
            kids = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
            grew = bool(kids)
            found |= kids
        return sorted(found)

    def kill(self) -> list[int]:
        """SIGKILL every process of the node at once, as if its machine lost power."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[str]:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed: `make test` installs it (the [test] extra)")
        pytest.skip("ray is not installed (pip install 'lego-diffusion[ray]')")
    temp = tempfile.mkdtemp(prefix="lego-ray-", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    # Token auth explicitly off for this loopback-only cluster: otherwise Ray turns it on or off
    # depending on whether some earlier local `ray.init()` left a ~/.ray/auth_token behind, and
    # nodes, driver and `lego serve` can disagree.
    old_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1",
              "--object-store-memory", str(80 * 1000 * 1000), "--disable-usage-stats"]
    global _SECOND
    try:
        _start(["--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--include-dashboard=false",
                "--dashboard-port", str(_free_port()),
                "--dashboard-agent-listen-port", str(_free_port()),
                "--system-config", json.dumps(SYSTEM_CONFIG),
                "--temp-dir", temp, "--resources", json.dumps({"node_a": 1}), *common], env)
        _SECOND = SecondNode(f"{HEAD_IP}:{port}", temp, env, common)
        _SECOND.start()
        yield f"{HEAD_IP}:{port}"
    finally:
        _SECOND = None
        from lego_backend.cluster.runtime import disconnect
        disconnect()
        _stop(temp)
        shutil.rmtree(temp, ignore_errors=True)
        if old_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old_auth


_SECOND: SecondNode | None = None


@pytest.fixture
def second_node(ray_cluster) -> SecondNode:
    assert _SECOND is not None
    return _SECOND


@pytest.fixture(scope="package")
def cluster(ray_cluster):
    """This test process connected to the cluster as its driver, services pinned to nodes."""
    from lego_backend.cluster.placement import ActorResources
    from lego_backend.cluster.runtime import connect

    resources = {kind: ActorResources(custom=((node, 0.01),))
                 for kind, node in NODE_RESOURCES.items()}
    return connect(ray_cluster, resources)


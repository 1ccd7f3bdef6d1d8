"""Command-line surface of the cluster: `lego serve --cluster ...` flags, and `lego cluster
status`, which asks a running server for its services, replicas, nodes, resources and queues
(GET /lego/services) and prints them. Importing this module never imports ray."""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from lego_backend.cluster.placement import ActorResources, parse_resources


def _resources(text: str) -> tuple[str, ActorResources]:
    try:
        return parse_resources(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--cluster", metavar="ADDRESS",
                       help="run model replicas as Ray actors: 'ray' (start a local Ray), "
                            "'HOST:PORT' or 'auto' (join a running cluster), 'ray://HOST:PORT' "
                            "(Ray Client). Needs pip install 'lego-diffusion[ray]'")
    serve.add_argument("--replica-resources", type=_resources, action="append",
                       metavar="KIND=NAME=VALUE,...",
                       help="what each replica actor of a kind declares, e.g. "
                            "denoiser=num_gpus=1,memory=6GiB or vae=num_cpus=1,node_a=0.01 "
                            "(custom resources of `ray start --resources`); repeatable")
    serve.add_argument("--nvshmem", action="store_true",
                       help="use NVSHMEM for GPU-to-GPU tensor hops where it can run "
                            "(pip install 'lego-diffusion[nvshmem]'); else one log line and "
                            "the object store")


def connect_from_args(args: argparse.Namespace) -> str | None:
    """Connect to the cluster `lego serve` was given; an error message, or None if fine."""
    if not getattr(args, "cluster", None):
        if getattr(args, "replica_resources", None) or getattr(args, "nvshmem", False):
            return "--replica-resources and --nvshmem need --cluster"
        return None
    if getattr(args, "replica_runtime", None) not in (None, "ray"):
        return f"--cluster runs replicas as Ray actors; drop --replica-runtime {args.replica_runtime}"
    from lego_backend.cluster.runtime import connect
    from lego_backend.errors import ServiceUnavailableError

    try:
        connect(args.cluster, dict(args.replica_resources or []), nvshmem=args.nvshmem)
    except ServiceUnavailableError as exc:
        return str(exc)
    return None


# --- lego cluster status -------------------------------------------------------------------------
def _fetch(url: str, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(url.rstrip("/") + "/lego/services")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"


def _resource_text(res: dict[str, float], avail: dict[str, float] | None = None) -> str:
    parts = []
    for name in sorted(res):
        if name.startswith("node:"):
            continue
        value = res[name]
        shown = _size(value) if name in ("memory", "object_store_memory") else f"{value:g}"
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def format_status(report: dict[str, Any]) -> str:
    """The human view of a /lego/services report."""
    lines = []
    cluster = report.get("cluster")
    if cluster:
        alive = [n for n in cluster["nodes"] if n["alive"]]
        lines.append(f"cluster: Ray at {cluster['address']}, {len(alive)} node(s) alive, "
                     f"transports {', '.join(cluster['transports'])}, "
                     f"{cluster['actors_started']} actor(s) started")
        if cluster.get("nvshmem"):
            nv = cluster["nvshmem"]
            lines.append(f"nvshmem: {'ready' if nv['available'] else nv['reason']}")
        lines.append("nodes:")
        for n in cluster["nodes"]:
            tags = (" (this server)" if n.get("driver") else "") + ("" if n["alive"] else " DEAD")
            lines.append(f"  {n['node'][:12]}  {n.get('address') or '?':<15} "
                         f"{_resource_text(n['resources'])}{tags}")
        if cluster.get("available_resources"):
            lines.append(f"  available: {_resource_text(cluster['available_resources'])}")
    else:
        lines.append("cluster: none (replicas run in the server's host)")
    lines.append("services:")
    if not report.get("services"):
        lines.append("  (none yet: services start with the first prompt that needs them)")
    for s in report.get("services", []):
        lines.append(f"  {s['service']}  replicas {s['replicas']}  queue {s['queue_depth']}  "
                     f"batches {s['batches_run']}  calls {s['calls_run']}  "
                     f"mean batch {s['mean_batch']:.2f}  resident {_size(s['resident_bytes'])}")
        for r in s.get("replica_detail", []):
            where = f"  node {str(r['node'])[:12]} {r.get('node_ip') or ''}" if r.get("node") else ""
            extra = f"  restarts {r['restarts']}" if "restarts" in r else ""
            if r.get("step_channel"):  # how its per-step calls travel (docs/cluster.md)
                extra += f"  steps via {r['step_channel']}"
            lines.append(f"    - {r.get('runtime')} pid {r.get('pid')}{where}  "
                         f"loaded {'yes' if r.get('loaded') else 'no'}  "
                         f"queue {r.get('queue_depth', 0)}{extra}")
            if r.get("error"):
                lines.append(f"      OUT OF SERVICE: {r['error']}")
    decisions = report.get("scaling_decisions") or []
    if decisions:
        lines.append("scaling decisions (latest last):")
        for d in decisions[-5:]:
            lines.append(f"  {d['service']}: {d['from']} -> {d['to']} ({d['why']})")
    if cluster and cluster.get("hops"):
        lines.append("tensor hops:")
        for label, h in cluster["hops"].items():
            lines.append(f"  {label:<22} {h['hops']:>7} hops  {_size(h['bytes']):>10}  "
                         f"mean {h['mean_ms']:.2f} ms")
    return "\n".join(lines)


def main_cluster_status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lego cluster status",
        description="services, replicas, nodes, resources and queue depths of a running server")
    parser.add_argument("--url", default="http://127.0.0.1:8188",
                        help="the lego server (default http://127.0.0.1:8188)")
    parser.add_argument("--token", help="API token of a server started with --listen "
                                        "(default: $LEGO_AUTH_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the raw report")
    args = parser.parse_args(argv)
    try:
        report = _fetch(args.url, args.token or os.environ.get("LEGO_AUTH_TOKEN"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"lego cluster status: cannot read {args.url}/lego/services: {exc}",
              file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_status(report))
    return 0

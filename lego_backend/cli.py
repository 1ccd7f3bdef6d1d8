"""`lego` command line: run a workflow headless, serve the ComfyUI-compatible API, build the
demo models. User mistakes print a clear message and exit non-zero, never a traceback."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lego_backend import process_env
from lego_backend.byte_sizes import parse_bytes
from lego_backend.config import BackendConfig, default_home
from lego_backend.errors import LegoError


def _config(args: argparse.Namespace) -> BackendConfig:
    home = default_home()
    models = Path(args.models).resolve() if getattr(args, "models", None) else home / "models"
    output = Path(args.output).resolve() if getattr(args, "output", None) else home / "output"
    data = Path(args.data).resolve() if getattr(args, "data", None) else home / "data"
    inp = Path(args.input).resolve() if getattr(args, "input", None) else home / "input"
    extra = tuple(Path(p) for p in (getattr(args, "extra_model_paths_config", None) or []))
    default_extra = models.parent / "extra_model_paths.yaml"
    if not extra and default_extra.is_file():
        extra = (default_extra,)
    serving: dict[str, object] = {}
    for name in ("mode", "slo_scale", "admission", "max_batch", "lora_async_steps", "max_queue",
                 "max_queue_per_client", "max_pixels", "history_max", "on_restart", "max_retries"):
        if getattr(args, name, None) is not None:
            serving[name] = getattr(args, name)
    if getattr(args, "max_concurrent", None) is not None:
        serving["max_concurrent_prompts"] = args.max_concurrent
    if getattr(args, "model_memory", None) is not None:
        serving["model_memory"] = args.model_memory
    if getattr(args, "replicas", None):
        serving["replicas"] = tuple(args.replicas)
    if getattr(args, "replica_runtime", None):
        serving["replica_runtime"] = args.replica_runtime
    if getattr(args, "cluster", None):  # replicas as Ray actors (lego_backend/cluster)
        serving["replica_runtime"] = "ray"
    # Only a server keeps a durable queue: `lego run` must never pick up (and re-run) the
    # prompts a `lego serve` sharing the same data dir left unfinished.
    serving["durable"] = getattr(args, "command", None) == "serve"
    return BackendConfig(models_dir=models, output_dir=output, input_dir=inp,
                         temp_dir=home / "temp", data_dir=data, extra_model_paths=extra,
                         torch_threads=getattr(args, "threads", None), **serving)  # type: ignore[arg-type]


def _replicas(text: str) -> tuple[str, int, int]:
    """'denoiser=2' (fixed) or 'denoiser=0:3' (autoscale between min and max)."""
    kind, sep, count = text.partition("=")
    lo, colon, hi = count.partition(":")
    try:
        low, high = int(lo), int(hi if colon else lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=N or KIND=MIN:MAX") from None
    if not sep or not kind or low < 0 or high < max(1, low):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND=N or KIND=MIN:MAX")
    return kind, low, high


def _bytes(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", help="models root with ComfyUI's folder layout "
                                    "(default: $LEGO_HOME/models, ~/.lego-diffusion/models)")
    p.add_argument("--output", help="output folder (default: $LEGO_HOME/output)")
    p.add_argument("--input", help="input images folder (default: $LEGO_HOME/input)")
    p.add_argument("--extra-model-paths-config", action="append",
                   help="an extra_model_paths.yaml (repeatable)")
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads per forward (default: each replica times its "
                        "first batches with torch's default and with 1, and keeps the faster)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lego", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow (API or UI format) and save its images")
    run.add_argument("workflow", help="workflow JSON file")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                     help="override an input, e.g. 6.text=\"a red circle\" (JSON values allowed)")
    run.add_argument("--model-map", action="append", default=[], metavar="OLD=NEW",
                     help="use model file NEW wherever the workflow names OLD "
                          "(repeatable), e.g. v1-5-pruned-emaonly.safetensors=mine.safetensors")
    _common(run)

    serve = sub.add_parser("serve", help="serve the ComfyUI-compatible API and editor")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; same as --listen ADDR)")
    serve.add_argument("--listen", nargs="?", const="0.0.0.0", metavar="ADDR",
                       help="listen beyond loopback: an address or a comma-separated list "
                            "(bare --listen: 0.0.0.0); needs an API token")
    serve.add_argument("--auth-token", metavar="TOKEN",
                       help="API token every request must carry (Authorization: Bearer, the "
                            "cookie set by /lego/login or ?token=); default $LEGO_AUTH_TOKEN")
    serve.add_argument("--max-upload-size", type=float, metavar="MB",
                       help="largest request body or upload in MB (default 100); more gets 413")
    serve.add_argument("--enable-cors-header", metavar="ORIGIN",
                       help="allow this one other origin (e.g. https://app.example) to call the "
                            "API from a browser (default: no CORS headers, cross-site refused)")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument("--data", help="users/settings folder (default: $LEGO_HOME/data)")
    serve.add_argument("--mode", choices=["micro", "monolithic"], default="micro",
                       help="micro: shared model services with cross-prompt batching (default); "
                            "monolithic: one worker per workflow kind, one prompt at a time")
    serve.add_argument("--max-concurrent", type=int, help="prompts executing at once (micro)")
    serve.add_argument("--max-batch", type=int, help="rows per denoiser batch (micro)")
    serve.add_argument("--model-memory", type=_bytes,
                       help="resident weights budget, e.g. 8GiB: idle services beyond it unload")
    serve.add_argument("--slo-scale", type=float,
                       help="default deadline = this x the workflow's standalone latency")
    serve.add_argument("--replicas", type=_replicas, action="append", metavar="KIND=N|MIN:MAX",
                       help="replicas per service kind (denoiser, text_encoder, vae, "
                            "controlnet); MIN:MAX scales with load, MIN 0 = scale to zero")
    serve.add_argument("--replica-runtime", choices=["thread", "process"],
                       help="run replicas in this process (default) or in worker processes "
                            "(tensors cross by shared memory)")
    serve.add_argument("--lora-async-steps", type=int, metavar="K",
                       help="a LoRA'd prompt may denoise up to K steps while its LoRA loads "
                            "(default 0: strict, deterministic)")
    serve.add_argument("--max-queue", type=int, help="pending prompts in all (default 1000); "
                                                     "more get HTTP 429 with Retry-After")
    serve.add_argument("--max-queue-per-client", type=int,
                       help="pending prompts of one client (default 200)")
    serve.add_argument("--max-pixels", type=int,
                       help="width x height x batch allowed for one image or latent "
                            "(default 67108864)")
    serve.add_argument("--admission", choices=["besteffort", "strict"],
                       help="strict: answer 429 to prompts predicted to miss their SLO")
    serve.add_argument("--history-max", type=int, metavar="N",
                       help="finished prompts kept in the history (default 10000; oldest "
                            "pruned first, in memory and in DATA/lego.db)")
    serve.add_argument("--on-restart", choices=["requeue", "fail"],
                       help="prompts a killed server left queued or running: run them again "
                            "(default) or record them as failed with the reason")
    serve.add_argument("--max-retries", type=int, metavar="N",
                       help="times a prompt cut short by a crash (dead worker process, killed "
                            "server) is retried before it fails with execution_error (default 2)")
    _common(serve)
    from lego_backend.cluster.cli import add_serve_flags
    add_serve_flags(serve)

    demo = sub.add_parser("demo-models", help="build the tiny offline demo models")
    demo.add_argument("--models")
    demo.add_argument("--if-missing", action="store_true", help="do nothing if present")

    conv = sub.add_parser("convert", help="UI-format workflow -> API-format prompt on stdout")
    conv.add_argument("workflow")

    bench = sub.add_parser("bench", help="micro-serving vs monolithic: SLO attainment under "
                                          "Poisson and bursty traces (writes results.json)")
    bench.add_argument("rest", nargs=argparse.REMAINDER,
                       help="options of the benchmark (--out DIR, --quick, --models DIR, ...)")

    for name, text in (("sim", ("discrete-event simulation of a GPU fleet running the same "
                                "scheduler (lego sim --cluster gpus=64 --mode micro --out DIR)")),
                       ("profile", "measure a service-time profile on this machine"),
                       ("demo", ("the trained demo model: lego demo train|eval|grid "
                                 "(train it from scratch, measure it, render its grid)"))):
        extra_parser = sub.add_parser(name, help=text)
        extra_parser.add_argument("rest", nargs=argparse.REMAINDER)

    cluster = sub.add_parser("cluster", help="lego cluster status: services, replicas, nodes, "
                                             "resources and queue depths of a running server")
    cluster.add_argument("action", choices=["status"])
    cluster.add_argument("rest", nargs=argparse.REMAINDER, help="--url URL, --token, --json")

    compat = sub.add_parser("compat", help="workflow compatibility tools")
    compat.add_argument("action", choices=["report"])
    compat.add_argument("rest", nargs=argparse.REMAINDER,
                        help="options of the report (--templates DIR, --top N, --json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    process_env.configure()  # before anything imports torch
    argv = sys.argv[1:] if argv is None else argv
    # These two own their option parsing (and --help).
    if argv[:1] == ["bench"]:
        from lego_backend.bench.run import main_bench
        return main_bench(argv[1:])
    if argv[:1] == ["demo"]:
        from lego_backend.demo_train.cli import main_demo
        return main_demo(argv[1:])
    if argv[:1] == ["sim"]:
        from lego_backend.sim.cli import main_sim
        return main_sim(argv[1:])
    if argv[:1] == ["profile"]:
        from lego_backend.sim.cli import main_profile
        return main_profile(argv[1:])
    if argv[:2] == ["cluster", "status"]:
        from lego_backend.cluster.cli import main_cluster_status
        return main_cluster_status(argv[2:])
    if argv[:2] == ["compat", "report"]:
        from lego_backend.compat_report import main_compat_report
        return main_compat_report(argv[2:])
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from lego_backend.run_command import run_workflow
        return run_workflow(args, _config(args))
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo-models":
        return _demo(args)
    if args.command == "convert":
        from lego_backend.run_command import convert_command
        return convert_command(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from comfy_compat.security import TOKEN_ENV, bind_error
    from comfy_compat.server import serve
    from lego_backend.backend import Backend

    host = args.listen or args.host
    token = args.auth_token or os.environ.get(TOKEN_ENV) or None
    problem = bind_error(host, token)
    if problem is not None:
        print(f"lego serve: {problem}", file=sys.stderr)
        return 2
    from lego_backend.cluster.cli import connect_from_args
    problem = connect_from_args(args)  # before the backend: its replicas start on the cluster
    if problem is not None:
        print(f"lego serve: {problem}", file=sys.stderr)
        return 2
    config = _config(args)
    try:
        backend = Backend(config)
        backend.claim_data_dir()  # a second server on the same --data: a message, not a trace
    except LegoError as err:
        print(f"lego serve: {err}", file=sys.stderr)
        return 2
    print(f"lego: models {config.models_dir}, output {config.output_dir}", file=sys.stderr)
    upload: dict[str, int] = {}
    if args.max_upload_size is not None:
        upload["max_upload_size"] = int(args.max_upload_size * 1024 * 1024)
    try:
        serve(backend, host=host, port=args.port, auth_token=token,
              cors_origin=args.enable_cors_header, **upload)
    except ValueError as err:  # an address that cannot be bound
        print(f"lego serve: {err}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from lego_backend.models.demo import build_demo_models, demo_models_present
    from lego_backend.models.demo_sdxl import build_sdxl_demo, sdxl_demo_present
    from lego_backend.models.demo_shapes import demo_shapes_present, install_demo_shapes

    models = Path(args.models).resolve() if args.models else default_home() / "models"
    if args.if_missing and demo_models_present(models) and sdxl_demo_present(models):
        shapes = None if demo_shapes_present(models) else install_demo_shapes(models)
        print(f"demo models present in {models}" + (f"; installed {shapes}" if shapes else ""))
        return 0
    built = {**build_demo_models(models), **build_sdxl_demo(models)}
    shapes = install_demo_shapes(models)  # the trained default model, shipped in the package
    if shapes is not None:
        built["shapes"] = shapes
    for kind, path in built.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

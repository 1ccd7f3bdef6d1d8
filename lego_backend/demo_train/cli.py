"""`lego demo train | eval | grid`: train the demo-shapes model, measure it, render its grid."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lego_backend.demo_train.engine_run import SamplerSettings
from lego_backend.demo_train.train_config import TrainConfig


def _shipped() -> Path:
    from lego_backend.models.demo_shapes import shipped_checkpoint

    return shipped_checkpoint()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lego demo", description=__doc__)
    sub = p.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train the demo model from scratch (CPU, seeded)")
    train.add_argument("--out", default="demo-train", help="output folder (default demo-train)")
    train.add_argument("--minutes", type=float, default=TrainConfig.minutes,
                       help="wall-time cap; training stops early (and says so) past it")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--pool", type=int, default=TrainConfig.pool,
                       help="scenes encoded for the UNet")
    train.add_argument("--tiny", action="store_true",
                       help="tiny architecture (smoke test of the pipeline, draws nothing)")
    train.add_argument("--vae-steps", type=int, default=TrainConfig.vae_steps)
    train.add_argument("--unet-steps", type=int, default=TrainConfig.unet_steps)
    train.add_argument("--unet-batch", type=int, default=TrainConfig.unet_batch,
                       help="scenes per UNet step (per-step cost is mostly fixed overhead on "
                            "a CPU, so larger batches see more scenes per minute)")
    train.add_argument("--prediction", choices=("epsilon", "v_prediction"),
                       default=TrainConfig.prediction, help="what the UNet learns to predict")
    train.add_argument("--max-steps", type=int, help="cap VAE and UNet steps (smoke tests)")
    train.add_argument("--vae-from", type=Path,
                       help="skip stage 1, use the vae.safetensors an earlier run wrote")
    train.add_argument("--init-from", type=Path,
                       help="start the UNet and CLIP from this checkpoint's weights (fine-tune)")
    train.add_argument("--unet-lr", type=float, default=TrainConfig.unet_lr,
                       help="peak learning rate of stage 2")
    for name in ("eval", "grid"):
        q = sub.add_parser(name, help="measure accuracy on held-out prompts through the engine"
                           if name == "eval" else "render prompts through the engine as a PNG")
        q.add_argument("--checkpoint", type=Path, help="default: the shipped demo model")
        q.add_argument("--steps", type=int, default=SamplerSettings.steps)
        q.add_argument("--cfg", type=float, default=SamplerSettings.cfg)
        q.add_argument("--out", type=Path, help="PNG to write")
    sub.choices["eval"].add_argument("--count", type=int, default=100)
    sub.choices["eval"].add_argument("--json", action="store_true")
    return p


def main_demo(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "train":
        from lego_backend.demo_train.train import run_training

        if args.minutes <= 0 or args.pool < 16:
            print("lego demo train: --minutes must be > 0 and --pool >= 16", file=sys.stderr)
            return 2
        cap = args.max_steps
        run_training(TrainConfig(
            out=Path(args.out), minutes=args.minutes, seed=args.seed, pool=args.pool,
            tiny=args.tiny, vae_from=args.vae_from, unet_batch=args.unet_batch,
            prediction=args.prediction, init_from=args.init_from, unet_lr=args.unet_lr,
            vae_steps=min(args.vae_steps, cap or args.vae_steps),
            unet_steps=min(args.unet_steps, cap or args.unet_steps)))
        return 0
    checkpoint = args.checkpoint or _shipped()
    if not checkpoint.is_file():
        print(f"lego demo {args.action}: no checkpoint at {checkpoint}", file=sys.stderr)
        return 2
    settings = SamplerSettings(steps=args.steps, cfg=args.cfg)
    if args.action == "eval":
        from lego_backend.demo_train.evaluate_model import evaluate_checkpoint

        result = evaluate_checkpoint(checkpoint, count=args.count, settings=settings,
                                     grid=args.out)
        data = result.as_dict()
        if args.json:
            print(json.dumps(data))
        else:
            for key, value in data.items():
                print(f"{key}: {value}")
        return 0
    from lego_backend.demo_train.evaluate_model import render_showcase

    out = args.out or Path("demo-grid.png")
    print(render_showcase(checkpoint, out, settings=settings))
    return 0

"""Engine overhead: the same txt2img graph (demo model, 20 steps) run by `lego run`'s engine
in-process vs a direct diffusers StableDiffusionPipeline call with the same weights, side by side
in one run. Prints engine/diffusers time ratios at 64 px and 256 px (goal: <= 1.10 at 256 px).

    .venv/bin/python benchmarks/overhead.py [--models DIR] [--repeats 5] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lego_backend import process_env

process_env.configure()  # the server's process settings, for both sides of the comparison

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

from lego_backend.models import loading
from lego_backend.models.demo import DEMO_CHECKPOINT, build_demo_models
from lego_backend.runtime.records import PromptRequest
from tests.integration.engine.helpers import make_backend, txt2img

STEPS, CFG, TEXT, NEG = 20, 7.0, "a red circle on a blue background", "blurry"


def diffusers_pipe(ckpt: Path) -> StableDiffusionPipeline:
    unet = loading.load_unet(ckpt)
    vae = loading.load_checkpoint_vae(ckpt)
    text_encoder, tokenizer = loading.load_text_encoder(ckpt)
    # The SD1.x scheduler settings, with ComfyUI's "normal" spacing equivalent (linspace).
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", num_train_timesteps=1000,
                                       timestep_spacing="linspace")
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def time_diffusers(pipe: StableDiffusionPipeline, size: int, out: Path, repeats: int) -> list[float]:
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with torch.inference_mode():
            image = pipe(TEXT, negative_prompt=NEG, num_inference_steps=STEPS, guidance_scale=CFG,
                         height=size, width=size,
                         generator=torch.Generator().manual_seed(i)).images[0]
        image.save(out / f"diffusers_{size}_{i}.png", compress_level=4)
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return times


def time_engine(tmp: Path, models: Path, size: int, repeats: int) -> list[float]:
    backend = make_backend(tmp / f"engine{size}", models)
    times = []
    for i in range(repeats + 1):
        prompt = txt2img(TEXT, seed=i, size=size, steps=STEPS)
        prompt["3"]["inputs"]["cfg"] = CFG
        prompt["7"]["inputs"]["text"] = NEG
        backend.cache.clear()  # a full run each time, like the pipeline call (models stay loaded)
        start = time.perf_counter()
        backend.submit(PromptRequest(prompt, client_id=None))
        record = backend.run_next()
        assert record is not None and record.status == "success", record and record.messages
        if i:
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        models = args.models or tmp / "models"
        if args.models is None:
            build_demo_models(models)
        pipe = diffusers_pipe(models / "checkpoints" / DEMO_CHECKPOINT)
        results = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                               "torch": torch.__version__, "threads": args.threads},
                   "config": {"steps": STEPS, "cfg": CFG, "repeats": args.repeats,
                              "sampler": "euler", "scheduler": "normal"}, "sizes": {}}
        for size in (int(s) for s in args.sizes.split(",")):
            # interleave so both see the same machine state
            eng = time_engine(tmp, models, size, args.repeats)
            ref = time_diffusers(pipe, size, tmp, args.repeats)
            ratio = statistics.median(eng) / statistics.median(ref)
            results["sizes"][str(size)] = {"engine_s": eng, "diffusers_s": ref,
                                           "engine_median_s": statistics.median(eng),
                                           "diffusers_median_s": statistics.median(ref),
                                           "ratio": ratio}
            print(f"{size:>4}px  engine {statistics.median(eng)*1000:8.1f} ms  "
                  f"diffusers {statistics.median(ref)*1000:8.1f} ms  "
                  f"engine/diffusers {ratio:.3f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

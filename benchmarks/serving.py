"""Serving benchmark: micro-serving vs monolithic serving of one workflow mix (txt2img, two LoRAs,
ControlNet, img2img, hires fix on one base checkpoint), side by side in one run. A thin wrapper
of `lego bench` (lego_backend/bench/run.py), for running from a source checkout:

    .venv/bin/python benchmarks/serving.py --out /tmp/bench [--quick] [--models DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lego_backend.bench.run import main_bench

if __name__ == "__main__":
    sys.exit(main_bench(sys.argv[1:]))

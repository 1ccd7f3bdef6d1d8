"""Process-wide settings that must be in place before torch is imported.

- Offline: models and tokenizers load from local files only, never from a hub.
- OMP_WAIT_POLICY=PASSIVE: the server runs torch from several threads (prompt runners and one
  thread per replica), each with its own OpenMP team. With libgomp's default, idle team
  workers spin and steal the few cores from the team doing the work: on 2 cores a UNet forward
  from a replica thread ran 1.7x slower than from the main thread. Passive waiting removed the
  gap (benchmarks/overhead.py: engine/diffusers 1.18 -> 0.98 at 256 px, diffusers itself got
  faster too). A value the user sets wins."""
from __future__ import annotations

import os

DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def configure() -> None:
    """Call first thing in a process, before anything imports torch."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)

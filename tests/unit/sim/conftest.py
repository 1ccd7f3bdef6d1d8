"""Fixtures of the simulator tests (toy profile and mix: see sim_helpers.py)."""
from __future__ import annotations

import pytest
from sim_helpers import toy_doc

from lego_backend.sim.profile import Profile, profile_from_dict
from lego_backend.sim.workload import Checkpoint, Mix


@pytest.fixture
def toy_profile() -> Profile:
    return profile_from_dict(toy_doc(), "toy")


@pytest.fixture
def toy_mix() -> Mix:
    return Mix(name="toy", checkpoints=(Checkpoint("toy-ckpt", "toy"),), lora_probability=0.0,
               controlnet_probability=0.0)

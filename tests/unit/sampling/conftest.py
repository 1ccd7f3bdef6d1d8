"""Fixtures of the sampling tests; the toy denoisers live in sampling_toys.py."""
from __future__ import annotations

import pytest

from lego_backend.sampling.model_sampling import DiscreteSchedule


@pytest.fixture(scope="session")
def sd_schedule() -> DiscreteSchedule:
    """SD1.x/SD2.x's sigma table (scaled_linear betas 0.00085..0.012, 1000 steps)."""
    return DiscreteSchedule.from_config()

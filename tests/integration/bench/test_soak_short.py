"""The short soak (CI's version of benchmarks/soak.py): 20 concurrent clients on loopback, mixed
workflows, random interrupts, queue deletes and websocket drops against a real `lego serve`.
Nothing accepted may be lost, no 5xx, the server still answers, memory does not run away."""
from __future__ import annotations

from pathlib import Path

import pytest

from lego_backend.bench.soak import SoakConfig, run_soak

pytestmark = pytest.mark.slow


def test_short_soak_loses_nothing(tmp_path: Path, demo_models: Path):
    cfg = SoakConfig(clients=20, prompts=60, steps=3, interrupt_p=0.2, disconnect_p=0.2,
                     rss_interval_s=0.25, drain_timeout_s=180.0)
    report = run_soak(demo_models, tmp_path / "server", cfg)
    assert report.submitted + report.rejected_429 == 60
    assert report.submitted > 0
    assert report.lost == [], report.lost
    assert report.http_5xx == 0, report.http_other_errors
    assert report.http_other_errors == []
    assert report.interrupts_sent > 0 and report.disconnects > 0
    # every accepted prompt ended as success, interrupted, or deleted from the queue
    assert set(report.finished) <= {"success", "interrupted", "deleted_from_queue"}, report.finished
    assert sum(report.finished.values()) == report.submitted
    assert report.finished.get("success", 0) > 0
    assert report.rss_growth < 1.5, report.rss_mb

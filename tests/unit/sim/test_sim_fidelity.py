"""The fidelity tool replays a bench run's own arrivals and kinds through the simulator."""
from __future__ import annotations

from sim_helpers import toy_doc

from lego_backend.sim.fidelity import compare
from lego_backend.sim.profile import profile_from_dict


def _bench(p50: float, p95: float) -> dict:
    point = {"value": 4.0, "attainment": 1.0, "passed": True, "p50_ms": p50, "p95_ms": p95,
             "trace": {"kind": "poisson", "rate": 4.0, "duration_s": 5.0, "seed": 7}}
    return {"config": {"seed": 1, "slo_scale": 5.0, "mix": {"steps": 4, "hires_steps": 4}},
            "machine": {"cpu_count": 2},
            "modes": {"monolithic": {"rate_sweep": [point]}, "micro": {"rate_sweep": [point]}}}


def test_compare_reports_relative_errors_per_point() -> None:
    profile = profile_from_dict(toy_doc(), "toy")
    # toy standalone for 4 steps: 5 + 4 x 10 + 5 = 50 ms; a bench that saw exactly the
    # simulated figures has zero error
    report = compare(_bench(50.0, 60.0), profile)
    assert len(report["points"]) == 2
    for row in report["points"]:
        assert row["n"] > 5 and row["sim_p50_ms"] is not None
        assert row["p50_rel_error"] == round((row["sim_p50_ms"] - 50.0) / 50.0, 4)
    exact = report["points"][0]
    again = compare(_bench(exact["sim_p50_ms"], exact["sim_p95_ms"]), profile)
    assert again["points"][0]["p50_rel_error"] == 0.0 == again["points"][0]["p95_rel_error"]

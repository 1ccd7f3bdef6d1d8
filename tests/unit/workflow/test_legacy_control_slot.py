"""Old editors saved the seed's control slot as a boolean; it is still an editor-only slot."""
from __future__ import annotations

from comfy_compat.workflow_format import workflow_to_prompt
from node_library import build_registry


def test_boolean_control_slot_is_skipped():
    workflow = {"nodes": [{"id": 3, "type": "KSampler", "mode": 0, "inputs": [], "outputs": [],
                           "widgets_values": [7, True, 12, 6.5, "euler", "karras", 0.5]}],
                "links": [], "version": 0.4}
    inputs = workflow_to_prompt(workflow, build_registry())["3"]["inputs"]
    assert inputs == {"seed": 7, "steps": 12, "cfg": 6.5, "sampler_name": "euler",
                      "scheduler": "karras", "denoise": 0.5}

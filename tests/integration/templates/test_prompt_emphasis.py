"""`(words:1.2)` in CLIPTextEncode text, through the real SD1 and SDXL text-encoder services on
the demo checkpoints: brackets are not fed to CLIP as text, only the emphasised positions of the
conditioning move (relative to the empty prompt, as in ComfyUI), and the pooled output stays."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.models.demo import DEMO_CHECKPOINT
from lego_backend.models.demo_sdxl import DEMO_SDXL_FILES
from lego_backend.services.protocol import ServiceCall, ServiceSpec
from lego_backend.services.text_encoder import TextEncoderService
from lego_backend.services.text_encoder_sdxl import SdxlTextEncoderService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd1(demo_models: Path) -> TextEncoderService:
    spec = ServiceSpec("text_encoder", "demo", demo_models / "checkpoints" / DEMO_CHECKPOINT)
    return TextEncoderService(spec, TensorStore())


@pytest.fixture(scope="module")
def sdxl(sdxl_models: Path) -> SdxlTextEncoderService:
    ckpt = sdxl_models / DEMO_SDXL_FILES["checkpoint_sdxl"]
    return SdxlTextEncoderService(ServiceSpec("text_encoder", "x", ckpt, family="sdxl"),
                                  TensorStore())


def encode(service: Any, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    (result,) = service.run_batch([ServiceCall("encode", {"text": text})])
    return service.store.get(result[0]), service.store.get(result[1])


@pytest.mark.parametrize("which", ["sd1", "sdxl"])
def test_emphasis_moves_only_its_tokens_away_from_the_empty_prompt(which: str,
                                                                   request: Any) -> None:
    service = request.getfixturevalue(which)
    plain, pooled = encode(service, "a red circle")
    empty, _ = encode(service, "")
    # neutral weights and brackets are syntax, not text: bit-identical to the plain prompt
    for same in ("a (red:1.0) circle", "(a red circle:1)"):
        cond, p = encode(service, same)
        assert torch.equal(cond, plain) and torch.equal(p, pooled)
    cond, p = encode(service, "a (red:1.5) circle")
    assert torch.allclose(p, pooled, atol=1e-5)  # same row; batched with the empty prompt
    changed = (~torch.isclose(cond, plain, atol=1e-5)).any(dim=-1)[0].nonzero().flatten().tolist()
    assert changed == [2]  # BOS, "a", "red": only the emphasised token
    expected = empty[0, 2] + (plain[0, 2] - empty[0, 2]) * 1.5
    assert torch.allclose(cond[0, 2], expected, atol=1e-5)
    # (red) is 1.1; escaped brackets are text CLIP reads
    nested, _ = encode(service, "a (red) circle")
    assert torch.allclose(nested[0, 2], empty[0, 2] + (plain[0, 2] - empty[0, 2]) * 1.1,
                          atol=1e-5)
    literal, _ = encode(service, r"a \(red\) circle")
    assert not torch.equal(literal, plain)

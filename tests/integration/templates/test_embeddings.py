"""`embedding:NAME` in a prompt puts a textual inversion's vectors into the conditioning; an
unknown name is reported and ignored (ComfyUI's behaviour), never a failure."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.models.demo import DEMO_CHECKPOINT
from lego_backend.models.demo_extra import DEMO_EMBEDDING
from lego_backend.models.safetensors_io import save_tensors
from lego_backend.services.protocol import ServiceCall, ServiceSpec
from lego_backend.services.text_encoder import CHUNK_TOKENS, TextEncoderService

pytestmark = pytest.mark.slow
NAME = DEMO_EMBEDDING.removesuffix(".safetensors")


@pytest.fixture(scope="module")
def encoder(demo_models: Path) -> TextEncoderService:
    spec = ServiceSpec("text_encoder", "demo", demo_models / "checkpoints" / DEMO_CHECKPOINT)
    return TextEncoderService(spec, TensorStore())


def cond(encoder: TextEncoderService, text: str, **args) -> torch.Tensor:
    (result,) = encoder.run_batch([ServiceCall("encode", {"text": text, **args})])
    return encoder.store.get(result[0])


def test_embedding_changes_the_conditioning(encoder) -> None:
    plain = cond(encoder, "a photo of a cat")
    with_emb = cond(encoder, f"a photo of embedding:{NAME} a cat")
    assert with_emb.shape == plain.shape == (1, 77, 32)
    assert not torch.allclose(plain, with_emb)
    # the extension is accepted; a weight in brackets is emphasis on the embedding's vectors
    assert torch.equal(with_emb, cond(encoder, f"a photo of embedding:{DEMO_EMBEDDING} a cat"))
    assert torch.equal(cond(encoder, f"x (embedding:{NAME}:1.0)"),
                       cond(encoder, f"x embedding:{NAME}"))
    assert not torch.equal(cond(encoder, f"x (embedding:{NAME}:1.2)"),
                           cond(encoder, f"x (embedding:{NAME}:0.5)"))


def test_other_vectors_give_other_conditioning(encoder, tmp_path) -> None:
    other = tmp_path / "mine.safetensors"
    save_tensors({"string_to_param.*": torch.randn(3, 32)}, other)
    a = cond(encoder, f"a photo of embedding:{NAME}")
    b = cond(encoder, f"a photo of embedding:{NAME}", embeddings={NAME: other})
    assert not torch.allclose(a, b)


def test_missing_embedding_is_reported_and_ignored(encoder, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        got = cond(encoder, "a photo of embedding:not-there a cat")
    assert torch.equal(got, cond(encoder, "a photo of a cat"))
    assert "embedding:not-there does not exist" in caplog.text
    assert "not-there" in encoder.missing_embeddings


def test_embedding_is_not_split_across_chunks(encoder) -> None:
    encoder.run_batch([ServiceCall("encode", {"text": ""})])  # loads the model
    text = "a " * (CHUNK_TOKENS - 1) + f"embedding:{NAME}"
    ids, inject = encoder.chunks_with_embeddings(text, {})
    assert ids.shape == (2, 77)
    assert sorted(inject) == [(1, 1), (1, 2)]  # both vectors start the second chunk
    assert len(cond(encoder, text)[0]) == 2 * 77

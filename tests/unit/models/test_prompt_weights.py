"""ComfyUI's emphasis syntax, parsed: what a user writes in a community workflow's prompt and the
(text, weight) pieces the encoder sees."""
from __future__ import annotations

import pytest
import torch

from lego_backend.models.prompt_weights import (
    CHUNK_TOKENS,
    apply_weights,
    tokenize_prompt,
    weighted_segments,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("a red circle", [("a red circle", 1.0)]),
    ("a (red) circle", [("a ", 1.0), ("red", 1.1), (" circle", 1.0)]),
    ("((red))", [("red", pytest.approx(1.21))]),
    ("(red:1.5) circle", [("red", 1.5), (" circle", 1.0)]),
    # the number sets the weight; it is not a product with the enclosing group's
    ("((red:0.5) circle)", [("red", 0.5), (" circle", 1.1)]),
    # the last colon counts; text before it keeps its colons
    ("(a:b:1.2)", [("a:b", 1.2)]),
    ("(ratio 16:9)", [("ratio 16", 9.0)]),  # as in ComfyUI: a number after a colon is a weight
    ("(see: this)", [("see: this", 1.1)]),
    ("(masterpiece:1.2), best quality, (blurry:-0.5)",
     [("masterpiece", 1.2), (", best quality, ", 1.0), ("blurry", -0.5)]),
    # escaped brackets are text; so are brackets without a partner
    (r"a \(red\) circle", [("a (red) circle", 1.0)]),
    (r"(a \(b\):1.3)", [("a (b)", 1.3)]),
    ("a (red circle", [("a (red circle", 1.0)]),
    ("a red) circle", [("a red) circle", 1.0)]),
    ("[red]", [("[red]", 1.0)]),  # A1111's de-emphasis is not ComfyUI syntax
    ("()", []),
])
def test_weighted_segments(text: str, expected: list) -> None:
    assert weighted_segments(text) == expected


def _words(text: str) -> list[int]:
    return [len(w) for w in text.split()]  # a stand-in tokenizer: one token per word


def test_chunks_carry_weights_and_keep_an_embedding_whole() -> None:
    text = "w " * (CHUNK_TOKENS - 1) + "(embedding:e:2)"
    chunks = tokenize_prompt(text, _words, lambda name: ["v1", "v2"])
    assert [len(p) for p in chunks.pieces] == [CHUNK_TOKENS - 1, 2]
    assert chunks.weights[1] == [2.0, 2.0] and chunks.weighted
    assert chunks.inject == {(1, 1): "v1", (1, 2): "v2"}  # slot 0 is BOS
    rows = chunks.weight_rows()
    assert rows.shape == (2, CHUNK_TOKENS + 2)
    assert rows[1, :4].tolist() == [1.0, 2.0, 2.0, 1.0]  # BOS, two vectors, EOS
    assert not tokenize_prompt("a b", _words, lambda name: None).weighted


def test_apply_weights_moves_only_weighted_positions() -> None:
    hidden = torch.randn(1, CHUNK_TOKENS + 2, 4)
    empty = torch.randn(CHUNK_TOKENS + 2, 4)
    weights = torch.ones(1, CHUNK_TOKENS + 2)
    weights[0, 3] = 1.5
    out = apply_weights(hidden, weights, empty)
    assert torch.equal(out[0, :3], hidden[0, :3]) and torch.equal(out[0, 4:], hidden[0, 4:])
    assert torch.allclose(out[0, 3], empty[3] + (hidden[0, 3] - empty[3]) * 1.5)

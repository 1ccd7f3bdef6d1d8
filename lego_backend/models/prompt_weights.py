"""Prompt emphasis as ComfyUI's CLIPTextEncode reads it, and CLIP token chunking shared by the
SD1 and SDXL text encoders.

Syntax (community workflows are full of it): `(words)` multiplies the weight of `words` by 1.1,
nesting multiplies again; `(words:1.3)` sets it to 1.3 (the number after the last colon, not a
product with the enclosing group's); `\\(` and `\\)` are literal brackets; a bracket with no partner
is literal text. Square brackets carry no meaning (A1111's `[word]` is not ComfyUI syntax).

Effect: the prompt is encoded with its plain tokens, and the empty prompt is encoded alongside;
then each weighted position is moved away from (w > 1) or towards (w < 1) the empty prompt's
vector at the same position: `z = empty + (z - empty) * w`. BOS, EOS and padding keep weight 1,
and the pooled output is the plain encoding's, so a prompt without emphasis encodes bit for bit
as before.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lego_backend.models.embeddings import split_prompt

CHUNK_TOKENS = 75  # CLIP sees 77 positions: BOS + 75 tokens + EOS; longer prompts use more chunks
PLACEHOLDER_ID = 0  # token id standing where an embedding vector goes (never EOS: pooling)
EMPHASIS = 1.1  # one pair of brackets without a number
_OPEN, _CLOSE = "\0(", "\0)"  # escaped brackets while parsing (NUL never comes from JSON text)


def _escape(text: str) -> str:
    return text.replace("\\(", _OPEN).replace("\\)", _CLOSE)


def _unescape(text: str) -> str:
    return text.replace(_OPEN, "(").replace(_CLOSE, ")")


def _groups(text: str) -> list[tuple[str, bool]]:
    """Top-level pieces of `text`: (inside of a balanced bracket group, True) or (plain, False).
    Brackets without a partner stay in the plain text."""
    out: list[tuple[str, bool]] = []
    plain: list[str] = []
    depth, start = 0, -1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\0":  # an escaped bracket: two characters, never structure
            if depth == 0:
                plain.append(text[i:i + 2])
            i += 2
            continue
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                if plain:
                    out.append(("".join(plain), False))
                    plain = []
                out.append((text[start + 1:i], True))
        elif depth == 0:
            plain.append(ch)
        i += 1
    if depth > 0:  # an unclosed "(": everything from it on is plain text
        plain.append(text[start:])
    if plain:
        out.append(("".join(plain), False))
    return out


def _explicit_weight(inside: str) -> tuple[str, float | None]:
    """`words:1.3` -> ("words", 1.3); no number after the last colon -> (inside, None)."""
    colon = inside.rfind(":")
    if colon <= 0:
        return inside, None
    try:
        return inside[:colon], float(inside[colon + 1:])
    except ValueError:
        return inside, None


def _segments(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for piece, grouped in _groups(text):
        if not grouped:
            out.append((piece, weight))
            continue
        inside, explicit = _explicit_weight(piece)
        out += _segments(inside, weight * EMPHASIS if explicit is None else explicit)
    return out


def weighted_segments(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) pieces in order, brackets and numbers removed."""
    return [(_unescape(piece), w) for piece, w in _segments(_escape(text), 1.0) if piece]


@dataclass
class TokenChunks:
    """A prompt as CLIP chunks: token ids (at most 75 per chunk), the weight of each, and the
    (chunk, position) slots whose token embedding is replaced by an embedding vector."""

    pieces: list[list[int]] = field(default_factory=lambda: [[]])
    weights: list[list[float]] = field(default_factory=lambda: [[]])
    inject: dict[tuple[int, int], Any] = field(default_factory=dict)

    def _add(self, token: int, weight: float) -> None:
        if len(self.pieces[-1]) == CHUNK_TOKENS:
            self.pieces.append([])
            self.weights.append([])
        self.pieces[-1].append(token)
        self.weights[-1].append(weight)

    @property
    def weighted(self) -> bool:
        return any(w != 1.0 for row in self.weights for w in row)

    def weight_rows(self, chunks: int | None = None) -> torch.Tensor:
        """[chunks, 77] weights in the layout of the id rows (1 at BOS, EOS and padding)."""
        rows = [[1.0, *w] + [1.0] * (CHUNK_TOKENS + 1 - len(w)) for w in self.weights]
        rows += [[1.0] * (CHUNK_TOKENS + 2)] * ((chunks or len(rows)) - len(rows))
        return torch.tensor(rows, dtype=torch.float32)


def tokenize_prompt(text: str, tokenize: Callable[[str], list[int]],
                    vectors: Callable[[str], Sequence[Any] | None]) -> TokenChunks:
    """Chunks of `text`: words through `tokenize`, `embedding:NAME` through `vectors` (one item
    per vector; None when the embedding is missing, which drops it). An embedding is kept in one
    chunk where it fits, so its vectors are not split across two CLIP passes."""
    out = TokenChunks()
    for segment, weight in weighted_segments(text):
        for kind, value in split_prompt(segment):
            if kind == "text":
                for token in tokenize(value):
                    out._add(token, weight)
                continue
            items = vectors(value)
            if items is None:
                continue
            if len(items) <= CHUNK_TOKENS and len(out.pieces[-1]) + len(items) > CHUNK_TOKENS:
                out.pieces.append([])
                out.weights.append([])
            for item in items:
                out._add(PLACEHOLDER_ID, weight)
                out.inject[(len(out.pieces) - 1, len(out.pieces[-1]))] = item  # BOS is slot 0
    if len(out.pieces) > 1 and not out.pieces[-1]:
        out.pieces.pop()
        out.weights.pop()
    return out


def apply_weights(hidden: torch.Tensor, weights: torch.Tensor,
                  empty: torch.Tensor) -> torch.Tensor:
    """hidden [chunks, 77, d] with each weighted position moved relative to `empty` [77, d]."""
    w = weights.to(hidden.dtype)[..., None]
    moved = empty + (hidden - empty) * w
    return torch.where(w != 1.0, moved, hidden)

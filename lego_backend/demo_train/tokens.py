"""Prompt text -> CLIP token rows exactly as the engine's text-encoder service builds them
(BOS + up to 75 tokens + EOS, padded with EOS to 77), so training sees what serving sees."""
from __future__ import annotations

import torch

from lego_backend.models.tokenizer import MODEL_MAX_LENGTH, load_clip_tokenizer


class Tokens:
    """Cached tokenisation: the captions of a procedural dataset repeat a lot."""

    def __init__(self) -> None:
        self.tokenizer = load_clip_tokenizer()
        self._cache: dict[str, list[int]] = {}

    def row(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            body = list(self.tokenizer(text, add_special_tokens=False,
                                       truncation=False)["input_ids"])[:MODEL_MAX_LENGTH - 2]
            bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
            ids = [bos, *body, eos] + [eos] * (MODEL_MAX_LENGTH - 2 - len(body))
            self._cache[text] = ids
        return ids

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.row(t) for t in texts], dtype=torch.long)

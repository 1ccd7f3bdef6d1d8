"""Text-encoder service: prompt text -> conditioning tensors (CLIP hidden states + pooled).

`embedding:NAME` in a prompt stands for the vectors of a textual inversion: the tokens around it
are encoded as usual and the embedding's vectors take the places of placeholder tokens (a hook on
the token-embedding layer swaps them in), so positions, chunking and the pooled output work as
for words. Unknown names are logged and dropped, as ComfyUI does.

Emphasis, `(words)` and `(words:1.2)`, is parsed and applied as ComfyUI does
(models/prompt_weights.py): against the empty prompt's encoding, after the transformer."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.models.embeddings import embedding_folders_near, find_embedding, read_vectors
from lego_backend.models.prompt_weights import (
    CHUNK_TOKENS,
    PLACEHOLDER_ID,
    TokenChunks,
    apply_weights,
    tokenize_prompt,
)
from lego_backend.services.adapters import AdapterCache, loaded_rows, row_adapters
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes

log = logging.getLogger(__name__)

__all__ = ["CHUNK_TOKENS", "PLACEHOLDER_ID", "TextEncoderService", "injected_embeddings"]

# Where embedding vectors go: (chunk, position) -> vector [d]
Injections = dict[tuple[int, int], torch.Tensor]


class TextEncoderService(ModelService):
    """ops: encode(text: str, clip_skip: int, adapters, embeddings: {name: path} optional) ->
    (cond handle [1, 77*k, d], pooled handle [1, d]). LoRAs apply at run time; encoding waits
    for them to load. Embedding names not passed in are looked up in the `embeddings/` folder
    of the checkpoint's models root."""

    model: Any = None
    tokenizer: Any = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.adapters = AdapterCache()
        self.missing_embeddings: list[str] = []  # names reported missing (for inspection)

    def load(self) -> None:
        self.model, self.tokenizer = loading.load_text_encoder(self.spec.path)
        self.model.eval().requires_grad_(False)

    def close(self) -> None:
        self.adapters.close()
        super().close()

    def unload(self) -> None:
        self.model = self.tokenizer = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        return [self._encode(c.args["text"], int(c.args.get("clip_skip", -1)),
                             c.args.get("adapters", ()), c.args.get("embeddings") or {})
                for c in calls]

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False,
                                   truncation=False)["input_ids"])

    def _rows(self, pieces: list[list[int]]) -> torch.Tensor:
        """Token ids as [chunks, 77]: each chunk BOS + up to 75 tokens + EOS, padded with EOS."""
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        rows = [[bos, *p, eos] + [eos] * (CHUNK_TOKENS - len(p)) for p in pieces or [[]]]
        return torch.tensor(rows, dtype=torch.long)

    def _vectors(self, name: str, given: dict[str, Any]) -> list[torch.Tensor] | None:
        path = given.get(name)
        if path is None:
            path = find_embedding(name, embedding_folders_near(self.spec.path))
        hidden = int(self.model.config.hidden_size)
        vectors = read_vectors(Path(path), hidden) if path is not None else None
        if vectors is None:
            # ComfyUI warns and goes on without it; a typo must not fail the prompt.
            why = "does not exist" if path is None else f"has no {hidden}-wide vectors"
            log.warning("warning, embedding:%s %s, ignoring", name, why)
            self.missing_embeddings.append(name)
            return None
        return list(vectors)

    def tokenize(self, text: str, given: dict[str, Any]) -> TokenChunks:
        """The prompt's chunks: ids, emphasis weights and embedding slots."""
        return tokenize_prompt(text, self._tokens, lambda name: self._vectors(name, given))

    def chunks_with_embeddings(self, text: str, given: dict[str, Any]
                               ) -> tuple[torch.Tensor, Injections]:
        """Id rows [chunks, 77] and where embedding vectors go."""
        chunks = self.tokenize(text, given)
        return self._rows(chunks.pieces), chunks.inject

    def _transformer(self) -> Any:
        """The module holding embeddings / final_layer_norm: CLIPTextModel itself since
        transformers 5.6 flattened it, `.text_model` before."""
        return getattr(self.model, "text_model", self.model)


    @torch.inference_mode()
    def _encode(self, text: str, clip_skip: int, adapters: Any,
                embeddings: dict[str, Any]) -> tuple[Any, Any]:
        chunks = self.tokenize(text, embeddings)
        ids = self._rows(chunks.pieces)
        n = ids.shape[0]
        if chunks.weighted:  # the empty prompt rides along: emphasis is relative to it
            ids = torch.cat([ids, self._rows([[]])])
        rows = loaded_rows(self.adapters, [(0, ids.shape[0])], [adapters], wait=True)
        with row_adapters(self.model, "text_encoder", rows), \
                injected_embeddings(self._transformer(), chunks.inject):
            out = self.model(input_ids=ids, output_hidden_states=clip_skip != -1)
        if clip_skip == -1:
            hidden = out.last_hidden_state
        else:
            # ComfyUI's SD1 CLIP normalises an earlier layer with the final layer norm too.
            layer = out.hidden_states[clip_skip]
            hidden = self._transformer().final_layer_norm(layer)
        if chunks.weighted:
            hidden = apply_weights(hidden[:n], chunks.weight_rows(), hidden[n])
        cond = hidden.reshape(1, -1, hidden.shape[-1]).contiguous()
        pooled = out.pooler_output[:1].contiguous()
        return self.store.put(cond), self.store.put(pooled)


@contextmanager
def injected_embeddings(transformer: Any, inject: Injections) -> Iterator[None]:
    """Swap embedding vectors into `transformer`'s token-embedding output while it runs."""
    if not inject:
        yield
        return

    def hook(module: Any, args: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        for (chunk, pos), vec in inject.items():
            out[chunk, pos] = vec.to(out.dtype)
        return out

    handle = transformer.embeddings.token_embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()

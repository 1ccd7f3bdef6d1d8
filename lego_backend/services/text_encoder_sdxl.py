"""Text-encoder service of an SDXL checkpoint: prompt text -> (per-token context, pooled).

SDXL conditions its UNet on both text encoders at once. Per token: CLIP ViT-L's and OpenCLIP
bigG's hidden states of their penultimate layer (no final layer norm), side by side (768 + 1280 =
2048 features on SDXL base). Pooled: bigG's projected end-of-text state of its LAST layer (1280),
which the UNet adds to its time embedding together with the size numbers. The two encoders see
the same tokens except for padding: ViT-L pads a chunk with end-of-text, bigG with token 0.
Prompts longer than 75 tokens are encoded in 77-position chunks concatenated along the tokens;
the pooled vector is the first chunk's. CLIPTextEncodeSDXL gives each encoder its own text
(text_g, text_l); the shorter token list is padded with chunks of the empty prompt.

`embedding:NAME` takes the vectors of a textual inversion with both widths (SDXL files carry
`clip_l` and `clip_g`); names not found, or without vectors for both encoders, are logged and
dropped, as ComfyUI does. Emphasis, `(words:1.2)`, is applied to each encoder's hidden states
against that encoder's encoding of the empty prompt (models/prompt_weights.py)."""
from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.embeddings import embedding_folders_near, find_embedding, read_vectors
from lego_backend.models.loading_sdxl import load_sdxl_text_encoders
from lego_backend.models.prompt_weights import (
    CHUNK_TOKENS,
    TokenChunks,
    apply_weights,
    tokenize_prompt,
)
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec, module_bytes
from lego_backend.services.text_encoder import injected_embeddings

log = logging.getLogger(__name__)

G_PAD_ID = 0  # bigG pads after EOS with token 0 ("!"), not with EOS
DEFAULT_LAYER = -2  # SDXL reads the penultimate layer of both encoders



class SdxlTextEncoderService(ModelService):
    """ops: encode(text, clip_skip, adapters, embeddings, text_l=None) -> (cond handle
    [1, 77*k, d_l + d_g], pooled handle [1, d_proj]). `text` feeds bigG (and CLIP-L unless
    `text_l` is given). clip_skip -1 (no CLIPSetLastLayer) means SDXL's default, the
    penultimate layer; -n reads hidden layer -n of both encoders."""

    encoders: Any = None

    def load(self) -> None:
        self.encoders = load_sdxl_text_encoders(self.spec.path)

    def unload(self) -> None:
        self.encoders = None
        super().unload()

    def resident_bytes(self) -> int:
        if not self.loaded or self.encoders is None:
            return 0
        return module_bytes(self.encoders.clip_l, self.encoders.clip_g)

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        out = []
        for c in calls:
            if c.op != "encode":
                raise ValueError(f"text encoder has no op {c.op!r}")
            if c.args.get("adapters"):
                # kohya SDXL LoRAs name the two encoders lora_te1_/lora_te2_: not mapped yet
                raise ModelLoadError("LoRA on SDXL text encoders is not supported yet; "
                                     "set strength_clip to 0 (the UNet side still applies)")
            text = c.args["text"]
            text_l = c.args.get("text_l")
            out.append(self._encode(text, text if text_l is None else text_l,
                                    int(c.args.get("clip_skip", -1)),
                                    c.args.get("embeddings") or {}))
        return out

    # ------------------------------------------------------------------ tokens
    def _vectors(self, name: str, given: dict[str, Any]
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = given.get(name)
        if path is None:
            path = find_embedding(name, embedding_folders_near(self.spec.path))
        widths = (int(self.encoders.clip_l.config.hidden_size),
                  int(self.encoders.clip_g.config.hidden_size))
        if path is None:
            log.warning("warning, embedding:%s does not exist, ignoring", name)
            return None
        pair = [read_vectors(Path(path), w) for w in widths]
        if pair[0] is None or pair[1] is None or len(pair[0]) != len(pair[1]):
            log.warning("warning, embedding:%s has no %s/%s-wide vector pair, ignoring",
                        name, *widths)
            return None
        return pair[0], pair[1]

    def _chunks(self, text: str, given: dict[str, Any]) -> TokenChunks:
        """Token ids in chunks of at most 75, their emphasis weights, and where embedding
        vectors go."""
        tok = self.encoders.tokenizer

        def pairs(name: str) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
            pair = self._vectors(name, given)
            return None if pair is None else list(zip(*pair))

        return tokenize_prompt(
            text, lambda value: tok(value, add_special_tokens=False,
                                    truncation=False)["input_ids"], pairs)

    def _rows(self, pieces: list[list[int]], pad: int | None) -> torch.Tensor:
        tok = self.encoders.tokenizer
        bos, eos = tok.bos_token_id, tok.eos_token_id
        fill = eos if pad is None else pad
        return torch.tensor([[bos, *p, eos] + [fill] * (CHUNK_TOKENS - len(p)) for p in pieces],
                            dtype=torch.long)

    # ------------------------------------------------------------------ encoding

    @torch.inference_mode()
    def _encode(self, text_g: str, text_l: str, clip_skip: int,
                embeddings: dict[str, Any]) -> tuple[Any, Any]:
        chunks_g = self._chunks(text_g, embeddings)
        chunks_l = chunks_g if text_l == text_g else self._chunks(text_l, embeddings)
        # ComfyUI pads the shorter list with whole chunks of the empty prompt
        n = max(len(chunks_g.pieces), len(chunks_l.pieces))
        weighted = chunks_g.weighted or chunks_l.weighted
        extra = [[]] if weighted else []  # the empty prompt rides along for emphasis

        def ids(chunks: TokenChunks, pad: int | None) -> torch.Tensor:
            return self._rows(chunks.pieces + [[]] * (n - len(chunks.pieces)) + extra, pad)

        layer = DEFAULT_LAYER if clip_skip == -1 else clip_skip
        enc = self.encoders
        with ExitStack() as stack:
            stack.enter_context(injected_embeddings(
                _transformer(enc.clip_l), {k: v[0] for k, v in chunks_l.inject.items()}))
            stack.enter_context(injected_embeddings(
                _transformer(enc.clip_g), {k: v[1] for k, v in chunks_g.inject.items()}))
            out_l = enc.clip_l(input_ids=ids(chunks_l, None), output_hidden_states=True)
            out_g = enc.clip_g(input_ids=ids(chunks_g, G_PAD_ID), output_hidden_states=True)
        h_l, h_g = out_l.hidden_states[layer], out_g.hidden_states[layer]
        if weighted:
            h_l = apply_weights(h_l[:n], chunks_l.weight_rows(n), h_l[n])
            h_g = apply_weights(h_g[:n], chunks_g.weight_rows(n), h_g[n])
        hidden = torch.cat([h_l, h_g], dim=-1)
        cond = hidden.reshape(1, -1, hidden.shape[-1]).contiguous()
        pooled = out_g.text_embeds[:1].contiguous()
        return self.store.put(cond), self.store.put(pooled)


def text_encoder_service(spec: ServiceSpec, store: Any) -> ModelService:
    """The text-encoder service class for a checkpoint's family (the pool's factory)."""
    if spec.family == "sdxl":
        return SdxlTextEncoderService(spec, store)
    from lego_backend.services.text_encoder import TextEncoderService

    return TextEncoderService(spec, store)


def _transformer(model: Any) -> Any:
    """The module holding the token embeddings (transformers moved it between versions)."""
    return getattr(model, "text_model", model)

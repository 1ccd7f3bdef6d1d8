"""Text-encoder service: prompt text -> conditioning tensors (CLIP hidden states + pooled)."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.lora_merge import merge_adapters
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes

CHUNK_TOKENS = 75  # CLIP sees 77 positions: BOS + 75 tokens + EOS; longer prompts use more chunks


class TextEncoderService(ModelService):
    """ops: encode(text: str, clip_skip: int) -> (cond handle [1, 77*k, d], pooled handle [1, d])."""

    model: Any = None
    tokenizer: Any = None

    def load(self) -> None:
        self.model, self.tokenizer = loading.load_text_encoder(self.spec.path)
        merge_adapters(self.model, self.spec.adapters, "text_encoder")
        self.model.eval().requires_grad_(False)

    def unload(self) -> None:
        self.model = self.tokenizer = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        return [self._encode(c.args["text"], int(c.args.get("clip_skip", -1))) for c in calls]

    def chunks(self, text: str) -> torch.Tensor:
        """Token ids as [chunks, 77]: each chunk BOS + up to 75 tokens + EOS, padded with EOS."""
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False, truncation=False)["input_ids"]
        bos, eos = tok.bos_token_id, tok.eos_token_id
        pieces = [ids[i:i + CHUNK_TOKENS] for i in range(0, len(ids), CHUNK_TOKENS)] or [[]]
        rows = [[bos, *p, eos] + [eos] * (CHUNK_TOKENS - len(p)) for p in pieces]
        return torch.tensor(rows, dtype=torch.long)

    @torch.inference_mode()
    def _encode(self, text: str, clip_skip: int) -> tuple[Any, Any]:
        ids = self.chunks(text)
        out = self.model(input_ids=ids, output_hidden_states=clip_skip != -1)
        if clip_skip == -1:
            hidden = out.last_hidden_state
        else:
            # ComfyUI's SD1 CLIP normalises an earlier layer with the final layer norm too.
            layer = out.hidden_states[clip_skip]
            hidden = self.model.text_model.final_layer_norm(layer)
        cond = hidden.reshape(1, -1, hidden.shape[-1]).contiguous()
        pooled = out.pooler_output[:1].contiguous()
        return self.store.put(cond), self.store.put(pooled)

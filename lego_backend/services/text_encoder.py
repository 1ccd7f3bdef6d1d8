"""Text-encoder service: prompt text -> conditioning tensors (CLIP hidden states + pooled)."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.adapters import AdapterCache, loaded_rows, row_adapters
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes

CHUNK_TOKENS = 75  # CLIP sees 77 positions: BOS + 75 tokens + EOS; longer prompts use more chunks


class TextEncoderService(ModelService):
    """ops: encode(text: str, clip_skip: int, adapters) -> (cond handle [1, 77*k, d],
    pooled handle [1, d]). LoRAs apply at run time; encoding waits for them to load."""

    model: Any = None
    tokenizer: Any = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.adapters = AdapterCache()

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
                             c.args.get("adapters", ())) for c in calls]

    def chunks(self, text: str) -> torch.Tensor:
        """Token ids as [chunks, 77]: each chunk BOS + up to 75 tokens + EOS, padded with EOS."""
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False, truncation=False)["input_ids"]
        bos, eos = tok.bos_token_id, tok.eos_token_id
        pieces = [ids[i:i + CHUNK_TOKENS] for i in range(0, len(ids), CHUNK_TOKENS)] or [[]]
        rows = [[bos, *p, eos] + [eos] * (CHUNK_TOKENS - len(p)) for p in pieces]
        return torch.tensor(rows, dtype=torch.long)

    @torch.inference_mode()
    def _encode(self, text: str, clip_skip: int, adapters: Any) -> tuple[Any, Any]:
        ids = self.chunks(text)
        rows = loaded_rows(self.adapters, [(0, ids.shape[0])], [adapters], wait=True)
        with row_adapters(self.model, "text_encoder", rows):
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

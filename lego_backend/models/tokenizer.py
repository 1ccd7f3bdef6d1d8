"""The CLIP tokenizer of SD1.x, built offline from the BPE merge list that open_clip ships.

CLIP's vocabulary is not stored anywhere as such; it is defined by the merge list: the 256 byte
symbols (GPT-2's printable byte-to-unicode table), the same 256 with the end-of-word marker
`</w>`, one token per merge in merge order, then `<|startoftext|>` and `<|endoftext|>`:
256 + 256 + 48894 + 2 = 49408 tokens. We derive `vocab.json` + `merges.txt` (the files of the
published SD1.5 `tokenizer/` folder) into the cache once and load them with transformers.
We only read open_clip's data file; importing open_clip itself is never needed.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import default_cache_dir, write_atomic

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
MODEL_MAX_LENGTH = 77
_NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48894
_CACHE_NAME = "clip-vit-l-14-bpe-v1"  # bump the suffix if the derivation ever changes


def bpe_source() -> Path:
    """Where open_clip's gzip'd merge list is installed (found without importing open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / BPE_FILE
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"CLIP BPE vocabulary {BPE_FILE} not found: install open-clip-torch "
                         "(its data file is all we read)")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table: printable latin-1 bytes map
    to themselves, the other 68 bytes to code points from 256 upward, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # insertion order = CLIP's symbol order: printable bytes, then the rest


def derive_vocab_and_merges(bpe_path: Path) -> tuple[dict[str, int], list[str]]:
    """(token -> id, merge lines) exactly as CLIP builds them from the merge list."""
    lines = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:1 + _NUM_MERGES]  # line 0 is a version header
    if len(merges) != _NUM_MERGES:
        raise ModelLoadError(f"{bpe_path.name} holds {len(merges)} merges, expected {_NUM_MERGES}")
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ModelLoadError(f"derived CLIP vocabulary has {len(vocab)} tokens, not {VOCAB_SIZE}")
    return vocab, merges


def tokenizer_dir(cache_dir: Path | None = None) -> Path:
    """A folder with vocab.json, merges.txt and tokenizer_config.json, derived once."""
    root = (cache_dir or default_cache_dir()) / "tokenizers" / _CACHE_NAME
    config = root / "tokenizer_config.json"
    if config.is_file():  # written last: its presence means the folder is complete
        return root
    vocab, merges = derive_vocab_and_merges(bpe_source())
    write_atomic(root / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    write_atomic(root / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    write_atomic(root / "special_tokens_map.json", json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=2))
    write_atomic(config, json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": MODEL_MAX_LENGTH,
        "do_lower_case": True, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=2))
    return root


def load_clip_tokenizer(cache_dir: Path | None = None,
                        folder: Path | None = None) -> CLIPTokenizer:
    """From `folder` (a diffusers `tokenizer/`) when given and present, else the tokenizer
    derived from open_clip's BPE file."""
    from transformers import CLIPTokenizer  # heavy import kept out of module import time

    source = folder if folder is not None and folder.is_dir() else tokenizer_dir(cache_dir)
    try:
        return CLIPTokenizer.from_pretrained(str(source), local_files_only=True,
                                             model_max_length=MODEL_MAX_LENGTH)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load CLIP tokenizer from {source}: {exc}") from exc

from __future__ import annotations

from pathlib import Path

from lego_backend.models.tokenizer import (
    VOCAB_SIZE,
    bpe_source,
    derive_vocab_and_merges,
    load_clip_tokenizer,
    tokenizer_dir,
)


def test_vocab_derivation_matches_clip() -> None:
    vocab, merges = derive_vocab_and_merges(bpe_source())
    assert len(vocab) == VOCAB_SIZE == 49408
    assert len(merges) == 48894
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320 and vocab["red</w>"] == 736 and vocab["circle</w>"] == 7117


def test_tokenizer_gives_real_clip_ids(cache_dir: Path) -> None:
    tok = load_clip_tokenizer(cache_dir)
    assert tok("a red circle").input_ids == [49406, 320, 736, 7117, 49407]
    assert tok("A  RED circle").input_ids == [49406, 320, 736, 7117, 49407]  # lower-cased
    padded = tok("a red circle", padding="max_length", max_length=tok.model_max_length,
                 truncation=True).input_ids
    assert len(padded) == 77 and padded[5:] == [49407] * 72
    long = tok(" ".join(["circle"] * 100), truncation=True, max_length=77).input_ids
    assert len(long) == 77 and long[-1] == 49407


def test_tokenizer_files_written_once(cache_dir: Path) -> None:
    folder = tokenizer_dir(cache_dir)
    stamp = (folder / "vocab.json").stat().st_mtime_ns
    assert tokenizer_dir(cache_dir) == folder
    assert (folder / "vocab.json").stat().st_mtime_ns == stamp
    assert (folder / "merges.txt").read_text().startswith("#version: 0.2\n")

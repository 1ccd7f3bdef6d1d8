"""SaveImage's file writing: the counter continues past files already there (a restarted server
never reuses a name), prompts saving at the same moment never write into one file, and a
reader never sees a half-written PNG under a final name."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch
from PIL import Image

from node_library.image_io import publish, save_batch


def _save(root: Path, value: float, prefix: str = "run") -> list[str]:
    images = torch.full((1, 8, 8, 3), value)
    return [item["filename"] for item in save_batch(images, root, prefix, "output", 1, None, None)]


def test_the_counter_continues_past_existing_files_and_never_overwrites(tmp_path: Path) -> None:
    first = _save(tmp_path, 0.2)
    (tmp_path / "run_00007_.png").write_bytes(b"an earlier server's file")
    before = (tmp_path / "run_00007_.png").read_bytes()
    later = _save(tmp_path, 0.8)
    assert first == ["run_00001_.png"] and later == ["run_00008_.png"]
    assert (tmp_path / "run_00007_.png").read_bytes() == before


def test_publish_refuses_a_taken_name(tmp_path: Path) -> None:
    final, tmp = tmp_path / "a.png", tmp_path / ".a.tmp"
    final.write_bytes(b"old")
    tmp.write_bytes(b"new")
    assert publish(tmp, final) is False
    assert final.read_bytes() == b"old"
    assert publish(tmp, tmp_path / "b.png") is True
    assert (tmp_path / "b.png").read_bytes() == b"new" and not tmp.exists()


def test_concurrent_saves_get_distinct_complete_files(tmp_path: Path) -> None:
    names: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()  # all look for the next free number at the same moment
        got = _save(tmp_path, i / 8)
        with lock:
            names.extend(got)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    pixels = set()
    for name in names:
        with Image.open(tmp_path / name) as im:
            im.load()
            pixels.add(im.getpixel((0, 0)))
    assert len(pixels) == 8  # each file holds its own prompt's image, none was overwritten
    assert not list(tmp_path.glob(".*.tmp"))
    assert len({hashlib.sha256((tmp_path / n).read_bytes()).digest() for n in names}) == 8

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lego_backend.errors import ModelLoadError, UnsafePathError
from lego_backend.models import identity as identity_mod
from lego_backend.models.store import IDENTITY_CACHE_NAME, ModelStore


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_diffusers(folder: Path) -> Path:
    touch(folder / "model_index.json", b"{}")
    touch(folder / "unet" / "config.json", b"{}")
    touch(folder / "unet" / "diffusion_pytorch_model.safetensors", b"weights")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "models"
    touch(r / "checkpoints" / "b.safetensors")
    touch(r / "checkpoints" / "sub" / "a.ckpt")
    touch(r / "checkpoints" / "notes.txt")
    touch(r / "checkpoints" / ".hidden.safetensors")
    touch(r / "loras" / "x.safetensors")
    touch(r / "clip" / "legacy_te.safetensors")
    touch(r / "text_encoders" / "te.sft")
    touch(r / "unet" / "old.pth")
    touch(r / "t2i_adapter" / "adapter.safetensors")
    touch(r / "configs" / "v1.yaml")
    make_diffusers(r / "diffusers" / "sd15-folder")
    make_diffusers(r / "checkpoints" / "nested" / "dfolder")
    return r


def test_folders_layout_and_aliases(root: Path) -> None:
    store = ModelStore(root)
    folders = store.folders()
    assert folders["controlnet"] == [root / "controlnet", root / "t2i_adapter"]
    assert folders["text_encoders"] == [root / "text_encoders", root / "clip"]
    assert folders["diffusion_models"] == [root / "diffusion_models", root / "unet"]
    assert store.list("clip") == store.list("text_encoders") == ["legacy_te.safetensors", "te.sft"]
    assert store.list("unet") == []  # old.pth is pickle: never offered
    assert store.list("controlnet") == ["adapter.safetensors"]
    assert store.list("configs") == ["v1.yaml"]


def test_list_checkpoints_recursive_with_diffusers_folders(root: Path) -> None:
    names = ModelStore(root).list("checkpoints")
    # pickle files, non-model files and dot-files are not listed; diffusers folders are listed
    # by folder name and their inner files are not.
    assert names == ["b.safetensors", "nested/dfolder", "sd15-folder"]
    assert ModelStore(root).list("diffusers") == ["sd15-folder"]


def test_unknown_folder_raises_keyerror(root: Path) -> None:
    store = ModelStore(root)
    with pytest.raises(KeyError):
        store.list("nope")
    with pytest.raises(KeyError):
        store.resolve("nope", "b.safetensors")


def test_resolve_finds_files_and_diffusers_folders(root: Path) -> None:
    store = ModelStore(root)
    assert store.resolve("checkpoints", "sub/a.ckpt") == (root / "checkpoints/sub/a.ckpt").resolve()
    assert store.resolve("checkpoints", "sub\\a.ckpt").name == "a.ckpt"  # Windows separator
    assert store.resolve("checkpoints", "sd15-folder") == (root / "diffusers/sd15-folder").resolve()
    assert store.resolve("clip", "legacy_te.safetensors").parent.name == "clip"


@pytest.mark.parametrize("name", ["../loras/x.safetensors", "sub/../../loras/x.safetensors",
                                  "/etc/passwd", "..\\loras\\x.safetensors", "C:/x.safetensors",
                                  "", "a\0b"])
def test_resolve_refuses_traversal(root: Path, name: str) -> None:
    with pytest.raises(UnsafePathError):
        ModelStore(root).resolve("checkpoints", name)


def test_resolve_missing_is_model_load_error(root: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        ModelStore(root).resolve("checkpoints", "missing.safetensors")


def test_symlink_escaping_root_is_refused_and_not_listed(root: Path, tmp_path: Path) -> None:
    outside = touch(tmp_path / "outside" / "secret.safetensors")
    os.symlink(outside, root / "checkpoints" / "link.safetensors")
    os.symlink(outside.parent, root / "checkpoints" / "linkdir")
    os.symlink(root / "checkpoints" / "b.safetensors", root / "checkpoints" / "inside.safetensors")
    store = ModelStore(root)
    with pytest.raises(UnsafePathError):
        store.resolve("checkpoints", "link.safetensors")
    with pytest.raises(UnsafePathError):
        store.resolve("checkpoints", "linkdir/secret.safetensors")
    names = store.list("checkpoints")
    assert "link.safetensors" not in names and not any(n.startswith("linkdir") for n in names)
    assert "inside.safetensors" in names  # a symlink that stays inside is fine
    assert store.resolve("checkpoints", "inside.safetensors").name == "b.safetensors"


def test_extra_model_paths_yaml(root: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    touch(other / "models" / "ckpts" / "extra.safetensors")
    touch(other / "models" / "more" / "more.safetensors")
    touch(other / "models" / "te" / "clip_l.safetensors")
    touch(other / "models" / "checkpoints" / "b.safetensors", b"shadowing")
    fav = tmp_path / "fav"
    touch(fav / "loras" / "fav.safetensors")
    monkeypatch.setenv("LEGO_TEST_FAV", str(fav))
    yaml_dir = tmp_path / "conf"
    yaml_dir.mkdir()
    yaml_file = yaml_dir / "extra_model_paths.yaml"
    yaml_file.write_text(
        "comfyui:\n"
        "    base_path: ../other\n"  # relative to the yaml file's directory
        "    checkpoints: |\n"
        "        models/ckpts\n"
        "        models/more\n"
        "    clip: models/te\n"
        "    custom_nodes: custom_nodes\n"  # not a model folder: ignored
        "favourites:\n"
        "    base_path: $LEGO_TEST_FAV\n"
        "    is_default: true\n"
        "    loras: [loras]\n"
        "shadow:\n"
        f"    base_path: {other}\n"
        "    is_default: true\n"
        "    checkpoints: models/checkpoints\n")
    store = ModelStore(root, extra_model_paths=[yaml_file])
    ckpt_dirs = store.folders()["checkpoints"]
    assert ckpt_dirs[0] == (other / "models/checkpoints").resolve()  # is_default goes first
    assert ckpt_dirs[1] == root / "checkpoints"
    assert ckpt_dirs[2:] == [(other / "models/ckpts").resolve(), (other / "models/more").resolve()]
    assert store.folders()["loras"][0] == (fav / "loras").resolve()
    assert "extra.safetensors" in store.list("checkpoints")
    assert "more.safetensors" in store.list("checkpoints")
    assert store.list("text_encoders") == ["clip_l.safetensors", "legacy_te.safetensors", "te.sft"]
    assert store.list("loras") == ["fav.safetensors", "x.safetensors"]
    # first directory wins on equal names
    assert store.resolve("checkpoints", "b.safetensors").read_bytes() == b"shadowing"


def test_identity_is_content_hash_and_cached(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = identity_mod.hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(identity_mod, "hash_file", counting)
    path = root / "checkpoints" / "b.safetensors"
    store = ModelStore(root)
    first = store.identity(path)
    import hashlib
    assert first == hashlib.sha256(b"x").hexdigest()
    assert store.identity(path) == first and len(calls) == 1  # in-memory
    assert (root / IDENTITY_CACHE_NAME).is_file()
    assert ModelStore(root).identity(path) == first and len(calls) == 1  # another process: file
    same_bytes = touch(root / "loras" / "copy.safetensors")
    assert store.identity(same_bytes) == first  # identity is the content, not the name
    path.write_bytes(b"changed content")
    os.utime(path, ns=(1, 1_000_000_000))
    assert store.identity(path) != first  # mtime/size changed: re-hashed
    assert len(calls) == 3


def test_identity_of_diffusers_folder(root: Path) -> None:
    store = ModelStore(root)
    folder = root / "diffusers" / "sd15-folder"
    first = store.identity(folder)
    assert first == store.identity(folder)
    (folder / "README.md").write_text("ignored")
    assert store.identity(folder) == first
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"other weights")
    assert store.identity(folder) != first


def test_identity_cache_survives_corruption(root: Path) -> None:
    (root / IDENTITY_CACHE_NAME).write_text("{not json")
    assert len(ModelStore(root).identity(root / "loras" / "x.safetensors")) == 64

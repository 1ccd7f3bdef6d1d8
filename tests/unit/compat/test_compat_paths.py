"""Safe joining of client-supplied paths; the protocol edge never imports torch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_compat.paths import clean_relative, is_plain_name, safe_join
from lego_backend.errors import UnsafePathError

ROOT = Path(__file__).resolve().parents[3]


def test_clean_relative():
    assert clean_relative("a\\b//c/./d") == "a/b/c/d"
    assert clean_relative("") == ""
    for bad in ("/etc/passwd", "..", "a/../../b", "a/..", "C:/x", "c:\\x", "\\\\srv\\x", "a\x00"):
        with pytest.raises(UnsafePathError):
            clean_relative(bad)


def test_safe_join_refuses_symlink_escapes(tmp_path: Path):
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", base / "link")
    os.symlink(base / "sub", base / "inner")
    assert safe_join(base, "sub", "x.png") == base.resolve() / "sub" / "x.png"
    assert safe_join(base, "inner", "x.png").parent.name == "inner"  # stays inside: fine
    assert safe_join(base, "") == base.resolve()
    for rel in ("link", "link/x", "../base2", "/abs"):
        with pytest.raises(UnsafePathError):
            safe_join(base, rel)


def test_plain_names():
    assert is_plain_name("a (1).png")
    for bad in ("", ".", "..", "a/b", "a\\b", "a\x00"):
        assert not is_plain_name(bad)


def test_protocol_edge_does_not_import_torch():
    code = ("import sys; import comfy_compat.app, comfy_compat.server, comfy_compat.ws, "
            "comfy_compat.templates, web.frontend; "
            "from comfy_compat.app import build_app; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr

"""Locating the stock ComfyUI editor (pip package `comfyui-frontend-package`) that we serve at /."""
from __future__ import annotations

import importlib.metadata
import importlib.resources
from pathlib import Path

# The editor version this server is tested against (system_stats.required_frontend_version).
REQUIRED_FRONTEND_VERSION = "1.58.1"
FRONTEND_PACKAGE = "comfyui-frontend-package"


def frontend_root() -> Path | None:
    """The package's `static/` directory (index.html, assets/...), or None if not installed."""
    try:
        root = importlib.resources.files("comfyui_frontend_package") / "static"
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return path if (path / "index.html").is_file() else None


def installed_frontend_version() -> str | None:
    try:
        return importlib.metadata.version(FRONTEND_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None

"""comfy_compat package."""

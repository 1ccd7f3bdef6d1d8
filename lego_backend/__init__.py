"""lego_backend package."""

"""node_library package."""

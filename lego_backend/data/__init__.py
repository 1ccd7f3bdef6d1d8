"""Data files shipped with the package (see README.md for their sources and licences)."""

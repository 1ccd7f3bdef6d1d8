"""A package, so the Ray cluster (a package-scoped fixture) stops when these tests end instead
of idling through the rest of the suite."""

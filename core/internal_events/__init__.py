"""Internal events: what Tessera itself observed about a profile (entered a segment, ...)."""

"""Tessera's web layer: the JSON API and the HTMX pages. It calls core services, never the reverse."""

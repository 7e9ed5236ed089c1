"""One router module per area; :mod:`web.app` includes them all."""

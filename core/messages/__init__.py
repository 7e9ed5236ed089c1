"""Messages: what is sent to a profile on a channel (personalization; delivery comes next)."""

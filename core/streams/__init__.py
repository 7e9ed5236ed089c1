"""Following append-only streams (processed events, internal events) past a stored cursor."""

"""The append-only audit log of sensitive operations."""

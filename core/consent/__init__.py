"""Consent per channel and purpose, with where it came from, when, and its full history."""

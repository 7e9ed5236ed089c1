"""Profiles: one per person, the identities pointing at them, merges, and the traits they hold."""

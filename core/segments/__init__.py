"""Segments: no-code audience rules, compiled to SQL for batch and evaluated per profile in real time."""

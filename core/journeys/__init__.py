"""Journeys: event-triggered multi-step flows (send, wait, wait for an event, branch, split, ...)."""

"""Durable background work: an outbox in each tenant database, dramatiq to run it."""

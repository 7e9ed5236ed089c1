"""The delivery pipeline: one row per recipient per send (the outbox), batched sending through the
channel plugins with rate limits and retries, provider statuses, tracked links."""

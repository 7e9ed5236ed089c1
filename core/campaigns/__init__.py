"""One-shot campaigns: a message to a segment on one channel, now or at a scheduled time."""

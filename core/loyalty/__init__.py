"""Loyalty: programs, earning rules, the points ledger, tiers, rewards, offers, challenges, referral."""

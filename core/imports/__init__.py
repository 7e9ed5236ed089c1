"""CSV imports of profiles (identify events) and transactions (Order Completed events)."""

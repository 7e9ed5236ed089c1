"""A small keyed store each plugin keeps in each tenant's database (synced provider data, state)."""

"""Privacy by default: export everything held on one person, and erase it."""

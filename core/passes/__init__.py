"""Wallet passes shared by every wallet channel: templates, issued passes, devices, distribution."""

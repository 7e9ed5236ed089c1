"""One delivery report for every channel, counted from the delivery rows."""

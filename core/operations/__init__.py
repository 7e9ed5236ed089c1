"""Digital pass operations: a guided, seven-step way to issue wallet passes to a segment and report on them."""

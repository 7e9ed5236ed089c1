"""Sandbox mode: plugins' local fakes of their providers, and the record of what reached them."""

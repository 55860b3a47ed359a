"""The read model: analysis queries over a Store, returning plain Python values."""

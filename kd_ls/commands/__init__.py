"""The `kd-ls` commands: the entry points on top of the library (never imported by it)."""

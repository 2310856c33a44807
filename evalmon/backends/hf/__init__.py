"""evalmon.backends.hf."""

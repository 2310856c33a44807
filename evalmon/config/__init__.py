"""evalmon.config."""

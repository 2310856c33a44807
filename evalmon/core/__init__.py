"""evalmon.core."""

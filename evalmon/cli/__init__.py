"""evalmon.cli."""

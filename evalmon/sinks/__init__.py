"""evalmon.sinks."""

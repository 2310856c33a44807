"""evalmon.harness."""

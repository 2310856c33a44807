"""The package version (read by provenance without importing the public API)."""

__version__ = "0.1.0"

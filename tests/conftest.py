"""Shared fixtures live in tests/plugins/ (one module per concern)."""

pytest_plugins = ["plugins.tiny_model", "plugins.mlflow_server"]

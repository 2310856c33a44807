"""An example third-party evalmon plugin: the task ``example_capitals`` and the monitor signal ``shout``.

Nothing here is imported by evalmon itself: ``evalmon.core.registry`` finds the two modules through the
entry points in this package's ``pyproject.toml`` once the package is installed.
"""

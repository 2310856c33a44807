"""Importing the monitor's quality checks from `python -c` (no ``__main__.__file__``) must not end the process.

great-expectations imports ``pyspark.sql.connect`` when pyspark is installed (the ``spark`` extra); without
pyspark's ``connect`` dependencies that import calls ``sys.exit(0)`` whenever ``__main__`` has no file — a silent
exit 0 for `python -c`, notebook runners and pytest-xdist workers. The ``spark`` extra pins ``pyspark[connect]``.
"""

from __future__ import annotations

import subprocess
import sys


def test_quality_checks_import_under_python_c() -> None:
    code = "import great_expectations, evalmon.monitor.quality; print('imported')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("imported"), (proc.stdout, proc.stderr)

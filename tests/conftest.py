"""Shared fixtures live in tests/plugins/ (one module per concern); test lanes (unit / e2e / accuracy) are
assigned in ``plugins/lanes.py``.

Bytecode: where ``PYTHONDONTWRITEBYTECODE`` is set, every process the tests start (the ``evalmon`` CLI,
the MLflow server) would compile torch/transformers/mlflow from source again (~4-10 s each, far more on
busy CI cores). Compiled files go to a directory outside the source tree instead (``PYTHONPYCACHEPREFIX``,
validated against the sources' mtimes as usual) — for this process and the ones it starts.
"""

import os
import sys
import tempfile

if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    _prefix = os.path.join(tempfile.gettempdir(), "evalmon-test-pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = _prefix
    sys.pycache_prefix = _prefix
    sys.dont_write_bytecode = False

pytest_plugins = ["plugins.tiny_model", "plugins.mlflow_server", "plugins.real_model", "plugins.lanes", "plugins.schedule",
                  "plugins.spark"]

"""Check a tracking URI before any compute, in seconds — not after an hour of scoring.

* malformed (``http://``, ``http://host:port80``) or a scheme MLflow has no store for (``foo://bar``):
  ``ConfigError``;
* a sqlite store or file store that cannot be written (read-only file or file system, missing directory):
  ``TrackingError``;
* a database URI (``postgresql://``, ``mysql://``, ``mssql://``, with or without ``+driver``) whose SQLAlchemy
  dialect or DBAPI driver cannot be loaded: ``ConfigError`` ("install psycopg …") — otherwise the run would
  compute and leave a pending marker that can never sync;
* an http(s) server that does not answer within ``PREFLIGHT_TIMEOUT_S``: a warning line, because an outage
  must not lose a run — the run goes on and is kept on disk for ``evalmon sync`` (as before), but the user
  learns it up front.

mlflow is imported only for schemes evalmon does not know itself (its store registry decides).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from evalmon.core.errors import ConfigError, EvalmonError, TrackingError
from evalmon.core.redact import redact_text
from evalmon.sinks.mlflow.payload import check_reachable, default_tracking_uri, is_sqlite, sqlite_path

PREFLIGHT_TIMEOUT_S = 3.0
_HINT = "use http(s)://host:port, sqlite:///path/to/mlflow.db or a directory (--tracking-uri or tracking.uri)"
_DB_ENGINES = ("postgresql", "mysql", "mssql")  # MLflow's SQL stores besides sqlite
_PIP_NAMES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
              "pymysql": "PyMySQL", "pyodbc": "pyodbc", "pymssql": "pymssql", "asyncpg": "asyncpg"}


def preflight(uri: str | None, base: Path | None = None, *, key: str = "tracking.uri",
              probe_server: bool = True) -> str | None:
    """Validate ``uri`` (``None``: the embedded store under ``base``, default the current directory).

    Returns ``None`` when the store is usable, or a one-line warning when an http(s) server does not answer;
    raises ``ConfigError``/``TrackingError`` (one line, what to do) when logging could never succeed. ``key``
    names where the URI came from in those messages (``--tracking-uri`` for a flag-only command);
    ``probe_server=False`` checks an http(s) URI's form only (a caller that tries the server right after)."""
    try:
        return _preflight(uri, base, probe_server)
    except EvalmonError as exc:
        if key != "tracking.uri" and exc.message.startswith("tracking.uri:"):
            raise type(exc)(key + exc.message[len("tracking.uri"):], hint=exc.hint) from None
        raise


def _preflight(uri: str | None, base: Path | None, probe_server: bool) -> str | None:
    if uri is None:
        base = Path(base or Path.cwd())
        with contextlib.suppress(OSError):
            (base / ".evalmon").mkdir(parents=True, exist_ok=True)
        uri = default_tracking_uri(base)
    uri = uri.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _check_http(uri, probe_server)
    if is_sqlite(uri):  # also sqlite+pysqlite://
        _check_sqlite(uri)
        return None
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":/", ":\\")):  # a path (or C:/…)
        _check_dir(Path(unquote(parts.path) if scheme == "file" else uri), uri)
        return None
    if scheme.split("+")[0] in _DB_ENGINES:
        _check_database(uri)
        return None
    _check_scheme(uri, scheme)
    return None


def _check_database(uri: str) -> None:
    """SQLAlchemy must be able to load the URI's dialect and its DBAPI driver (no connection is made)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = redact_text(uri)
    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"tracking.uri: {shown}: SQLAlchemy has no driver {uri.split(':', 1)[0]!r}",
                          hint="use e.g. postgresql+psycopg2://, mysql+pymysql:// or mssql+pyodbc://") from None
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"tracking.uri: {shown} is not a valid database URI ({redact_text(str(exc))})",
                          hint=_HINT) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or str(exc)
        raise ConfigError(f"tracking.uri: {shown}: the database driver {module!r} for {url.drivername} is not "
                          "installed", hint=f"install it (pip install '{_PIP_NAMES.get(module, module)}'), or use "
                          "--no-tracking / another tracking URI") from None


def _check_http(uri: str, probe_server: bool = True) -> str | None:
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"tracking.uri: {uri!r} has an invalid port", hint=_HINT) from None
    if not parts.hostname or port == 0:
        raise ConfigError(f"tracking.uri: {uri!r} names no server (host[:port])", hint=_HINT)
    if not probe_server:
        return None
    reason = check_reachable(uri, timeout=PREFLIGHT_TIMEOUT_S)
    if reason is None:
        return None
    return (f"warning: MLflow at {redact_text(uri)} does not answer ({reason}); the run goes on and is kept on disk — "
            "upload it later with `evalmon sync`")


def _check_scheme(uri: str, scheme: str) -> None:
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    try:
        _tracking_store_registry.get_store_builder(uri)
    except Exception:  # mlflow's UnsupportedModelRegistryStoreURIException and friends
        raise ConfigError(f"tracking.uri: {uri!r}: MLflow has no tracking store for the scheme {scheme!r}",
                          hint=_HINT) from None


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI (``None`` for an in-memory database)."""
    try:
        return sqlite_path(uri)
    except ValueError as exc:
        raise ConfigError(f"tracking.uri: {uri!r} is not a valid sqlite URI: {exc}", hint=_HINT) from None


def _check_sqlite(uri: str) -> None:
    path = _sqlite_path(uri)
    if path is None:
        return
    path = path.resolve()
    if not path.parent.is_dir():
        raise TrackingError(f"tracking.uri: {uri}: directory {path.parent} does not exist",
                            hint="create it, or point the tracking URI somewhere writable")
    _probe_dir(path.parent, uri)  # sqlite writes its journal next to the database
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
    except sqlite3.Error as exc:
        raise _unwritable(uri, path, str(exc)) from None
    try:
        db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file or file system
        db.rollback()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):  # busy: another writer — fine
            raise _unwritable(uri, path, str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"tracking.uri: {path} is not a usable sqlite database ({exc})",
                            hint="point the tracking URI at another file, or move this one aside") from None
    finally:
        db.close()


def _check_dir(path: Path, uri: str) -> None:
    """A file store: the directory (or its nearest existing parent) must be writable."""
    path = path.expanduser().resolve()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise TrackingError(f"tracking.uri: {uri}: {existing} is not a directory",
                            hint="point the tracking URI at a directory or an http(s)/sqlite store")
    _probe_dir(existing, uri)


def _probe_dir(directory: Path, uri: str) -> None:
    probe = directory / f".evalmon-write-test-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise _unwritable(uri, directory, exc.strerror or str(exc)) from None


def _unwritable(uri: str, path: Path, why: str) -> TrackingError:
    return TrackingError(f"tracking.uri: {uri}: cannot write {path} ({why})",
                         hint="make it writable, or choose another store with --tracking-uri (or --no-tracking)")

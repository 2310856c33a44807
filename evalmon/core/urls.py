"""Join an endpoint path onto a base URL without losing (or swallowing) its query string.

``http://h/v1?token=S&x=1`` + ``/models`` → ``http://h/v1/models?token=S&x=1`` — string concatenation
would put the path inside the query (``…?token=S&x=1/models``). Used wherever evalmon appends an
endpoint (``/models``, ``/completions``, ``/chat/completions``, MLflow's ``/health``) to a configured URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["join_url"]


def join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path (one ``/`` between); query and fragment kept."""
    parts = urlsplit(base)
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit(parts._replace(path=joined))

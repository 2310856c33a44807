"""Secrets out of what evalmon writes or prints: URI credentials, secret query parameters, webhook paths.

One rule set, applied where a value enters something persisted (``results.json``, ``report.html``,
``summary.md``, MLflow params/tags/notes, window files, pending markers) or printed. The real value is
still the one connections use; only the stored and printed forms are redacted (``***``):

- userinfo: ``postgresql://user:PASS@host/db`` → ``postgresql://***@host/db`` (a bare ``token@`` too:
  some services put the secret in the user name);
- query and fragment parameters whose name looks secret (key, api_key, token, secret, password, sig,
  signature, auth, code, credential, session, …): ``?api_key=S3CRET&x=1`` → ``?api_key=***&x=1``;
- webhook URLs of services that keep the secret in the path (Slack, Discord, Teams, Zapier, IFTTT,
  Telegram bots): ``https://hooks.slack.com/services/T0/B0/XYZ`` → ``https://hooks.slack.com/***``;
  on any other http(s) URL a path segment that looks like a random token (≥ 20 characters mixing
  letters and digits, not hex such as run ids and hashes) becomes ``***``;
- ``redact_webhook(url)`` for a URL known to be a webhook: only ``scheme://host[:port]/***`` is kept.

``redact_text`` finds every ``scheme://…`` in free text (command lines, error messages, notes);
``redact_obj`` walks dicts/lists/tuples. Text without a URI is returned unchanged.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "basic_auth_header", "redact_obj", "redact_text", "redact_uri", "redact_webhook",
           "without_masked_userinfo"]

MASK = "***"

_URI = re.compile(r"(?i)(?<![\w+.-])[a-z][a-z0-9+.-]*://[^\s\"'<>`\\]+")
_AUTHORITY = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*@)?(?P<rest>.*)$", re.S)
_PARAM = re.compile(r"(?P<name>[^&;=?#]+)=(?P<value>[^&;#]*)")
_SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pass", "pwd", "sig", "signature", "auth",
    "authorization", "code", "credential", "credentials", "session", "sessionid", "jwt", "bearer", "cookie",
    "private", "hmac", "otp", "sas", "securitytoken",
})
_WEBHOOK_HOSTS = (  # (host suffix, path prefix): the path after the prefix is the secret
    ("hooks.slack.com", ""), ("discord.com", "/api/webhooks"), ("discordapp.com", "/api/webhooks"),
    ("webhook.office.com", ""), ("outlook.office.com", "/webhook"), ("hooks.zapier.com", ""),
    ("maker.ifttt.com", ""), ("api.telegram.org", ""), ("chat.googleapis.com", ""),
)
_TOKEN_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.~%]{20,}$")
_HEX = re.compile(r"^[0-9a-fA-F-]+$")


def _secret_name(name: str) -> bool:
    """``api_key``, ``X-Amz-Signature``, ``accessToken``, ``client_secret`` … (by word, so that
    ``plot_metric_keys`` or ``monkey`` stay readable)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]
    joined = "".join(words)
    return joined in _SECRET_WORDS or any(w in _SECRET_WORDS for w in words)


def _redact_params(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        return f"{m['name']}={MASK}" if m["value"] and _secret_name(m["name"]) else m[0]

    return _PARAM.sub(one, text)


def _looks_like_token(segment: str) -> bool:
    return (bool(_TOKEN_SEGMENT.match(segment)) and not _HEX.match(segment)
            and any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment))


def _redact_path(scheme: str, host: str, path: str) -> str:
    if scheme.lower() not in ("http", "https", "ws", "wss") or not path:
        return path
    host = host.lower()
    for suffix, prefix in _WEBHOOK_HOSTS:
        if (host == suffix or host.endswith("." + suffix)) and path.startswith(prefix):
            return f"{prefix}/{MASK}" if path[len(prefix):].strip("/") else path
    return "/".join(MASK if _looks_like_token(s) else s for s in path.split("/"))


def redact_uri(uri: str) -> str:
    """One URI with its credentials, secret parameters and webhook secrets replaced by ``***``."""
    m = _AUTHORITY.match(uri)
    if not m:
        return uri
    scheme, userinfo, rest = m["scheme"], m["userinfo"], m["rest"]
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    hostport, slash, path = rest.partition("/")
    host = hostport.rsplit(":", 1)[0] if not hostport.endswith("]") else hostport
    path = _redact_path(scheme.split(":")[0], host, slash + path)
    return (f"{scheme}{MASK + '@' if userinfo else ''}{hostport}{path}{qmark}{_redact_params(query)}"
            f"{hash_}{_redact_params(fragment)}")


def redact_webhook(url: str) -> str:
    """A webhook URL as ``scheme://host[:port]/***``: its path and query are the credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/{MASK}"


def redact_text(text: str) -> str:
    """Every ``scheme://…`` in ``text`` through ``redact_uri``; the rest of the text unchanged."""
    if "://" not in text:
        return text
    return _URI.sub(lambda m: redact_uri(m[0]), text)


def redact_obj(obj: Any) -> Any:
    """``redact_text`` on every string (keys too) of nested dicts, lists and tuples; other values as is."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v) for v in obj)
    return obj


def without_masked_userinfo(uri: str | None) -> str | None:
    """A stored (redacted) tracking URI made usable again: ``http://***@host`` → ``http://host``, so the
    connection authenticates from the environment (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``)
    instead of sending ``***`` as a password."""
    if not uri:
        return uri
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)" + re.escape(MASK) + "@", r"\1", uri)


def basic_auth_header(url: str) -> tuple[str, dict[str, str]]:
    """``http://user:pw@host/x`` → (``http://host/x``, ``{"Authorization": "Basic …"}``): what MLflow's
    client (requests) does with URL credentials, for a plain ``urllib`` request (which cannot)."""
    m = _AUTHORITY.match(url)
    if not m or not m["userinfo"] or without_masked_userinfo(url) != url:
        return without_masked_userinfo(url) or url, {}
    import base64

    user, _, password = m["userinfo"][:-1].partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return m["scheme"] + m["rest"], {"Authorization": f"Basic {token}"}

"""HTTP for the ``openai`` backend: one ``httpx`` client, the API key, retries with backoff, redaction, and
the worker pool that runs requests ``concurrency`` at a time. Knows nothing about requests' meaning.

* 429/5xx/connection errors/timeouts/malformed JSON are retried ``max_retries`` times (tenacity) with exponential
  backoff and jitter (``Retry-After`` honoured); 4xx, a redirect (never followed) or an event stream nobody
  asked for → one-line ``ModelError`` with a hint; ``timeout_s`` bounds each whole response;
* the API key is read from the variable named by ``api_key_env`` and only ever sent in the ``Authorization``
  header; server text quoted in errors has it redacted;
* ``map`` reports each finished request at once (so the runner's cache keeps partial progress) and the first
  failure (or Ctrl-C) stops the rest.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from evalmon.core.errors import ModelError
from evalmon.core.urls import join_url

T = TypeVar("T")
MAX_DELAY_S = 30.0  # cap of one backoff wait


class Retryable(Exception):
    """A failure worth another attempt (429, 5xx, network, timeout, malformed body)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(Exception):
    """Another request of the same call failed: this one is not sent (again)."""


class EndpointMissing(Exception):
    """``/models`` answered 404 (not every server has it)."""


class Refused(Exception):
    """Raised by a response parser for a well-formed answer that lacks what the caller needs: not retried."""


def backoff_delay(attempt: int, base: float, retry_after: float | None = None, rnd: random.Random | None = None
                  ) -> float:
    """Wait before retry ``attempt`` (1-based): ``base·2^(attempt-1)`` capped at 30 s, jittered to 50–100 %;
    never shorter than the server's ``Retry-After`` (also capped)."""
    delay = min(MAX_DELAY_S, base * 2 ** (attempt - 1)) * (rnd or random).uniform(0.5, 1.0)
    return max(delay, min(retry_after or 0.0, MAX_DELAY_S))


class ApiClient:
    """``request`` one API call with retries; ``map`` many on a thread pool. ``cfg`` is the ``model:`` config
    (base_url, api_key_env, timeout_s, concurrency, max_retries, backoff_s)."""

    def __init__(self, cfg: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.base_url: str = cfg.base_url.rstrip("/")
        self._sleep = sleep
        self._local = threading.local()  # .stop: the Event of the map call a worker thread belongs to
        self._secret = self._api_key()
        self._client = self._new_client()  # thread-safe; shared by the worker threads

    def _new_client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        return httpx.Client(headers=headers, timeout=httpx.Timeout(self.cfg.timeout_s),
                            limits=httpx.Limits(max_connections=self.cfg.concurrency + 1))

    def _api_key(self) -> str | None:
        name = self.cfg.api_key_env
        if not name:
            return None
        key = os.environ.get(name, "")
        if not key.strip():
            raise ModelError(f"model.api_key_env: environment variable {name} is not set (or empty)",
                             hint=f"export {name}=<your key>; the key itself never goes in the suite file")
        return key.strip()

    def redact(self, text: str) -> str:
        text = " ".join(text.split())
        return text.replace(self._secret, "***") if self._secret else text

    def request(self, method: str, path: str, payload: dict[str, Any] | None, parse: Callable[[Any], T]) -> T:
        """One API call: retried on 429/5xx/network errors/timeouts/malformed bodies; 4xx → ``ModelError``."""
        from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

        url = join_url(self.base_url, path)
        attempts = self.cfg.max_retries + 1

        def once() -> T:
            stop = getattr(self._local, "stop", None)
            if stop is not None and stop.is_set():  # another request of this map() failed: not sent (again)
                raise Cancelled
            return self._attempt(method, url, payload, parse)

        def wait(state: RetryCallState) -> float:  # after failed attempt n: backoff_delay(n, …, its Retry-After)
            exc = state.outcome.exception() if state.outcome is not None else None
            return backoff_delay(state.attempt_number, self.cfg.backoff_s, getattr(exc, "retry_after", None))

        retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait, sleep=self._sleep,
                            retry=retry_if_exception_type(Retryable), reraise=True)
        try:
            return retrying(once)
        except Retryable as exc:
            problem = str(exc)
        hint = "check that the server is up and healthy; finished requests are cached — rerun to resume"
        if path == "/chat/completions" and "HTTP 5" in problem:
            hint += " (a 500 from /chat/completions can mean the model has no chat template: try mode: completions)"
        raise ModelError(f"{method} {url} failed after {attempts} attempt{'s' * (attempts > 1)}: {problem}",
                         hint=hint)

    def _attempt(self, method: str, url: str, payload: dict[str, Any] | None, parse: Callable[[Any], T]) -> T:
        try:
            status, headers, raw = self._exchange(method, url, payload)
        except httpx.TimeoutException:
            raise Retryable(f"no response within timeout_s={self.cfg.timeout_s:g}") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection failed ({type(exc).__name__}: {self.redact(str(exc))[:200]})") from None
        body = self.redact(raw.decode("utf-8", errors="replace"))[:300]
        if status == 429 or status >= 500:
            raise Retryable(f"HTTP {status}: {body}", _retry_after(headers.get("retry-after")))
        if status == 404 and urlsplit(url).path.endswith("/models"):
            raise EndpointMissing
        if 300 <= status < 400:  # not followed: the Authorization header would go wherever it points
            where = self.redact(headers.get("location") or "(no Location header)")
            raise ModelError(f"{method} {url}: HTTP {status} redirect to {where}",
                             hint="set model.base_url to the URL the server redirects to (evalmon does not follow "
                                  "redirects, so the API key never goes to another host)")
        if status >= 400:
            hint = {401: "the server wants a valid API key: set model.api_key_env to the variable holding it",
                    403: "the key in model.api_key_env is not allowed to use this model",
                    404: "check model.base_url (the API root, usually ending in /v1) and model.model"
                    }.get(status, "the server rejected the request")
            raise ModelError(f"{method} {url}: HTTP {status}: {body}", hint=hint)
        if headers.get("content-type", "").startswith("text/event-stream") or body.lstrip().startswith("data:"):
            raise ModelError(f"{method} {url}: the server answered with an event stream (SSE), but evalmon asked "
                             f"for one JSON response (no stream: true): {body[:80]!r}",
                             hint="turn off forced streaming on the server or the proxy in front of it")
        try:
            return parse(json.loads(raw))
        except Refused:
            raise
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise Retryable(f"malformed response (not the expected JSON): {body[:120]!r}") from None

    def _exchange(self, method: str, url: str, payload: dict[str, Any] | None
                  ) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and body of one call; ``timeout_s`` bounds the whole answer, not only each read
        (httpx's timeout is per read: a body trickling in a byte at a time would never trip it)."""
        deadline = time.monotonic() + self.cfg.timeout_s
        with self._client.stream(method, url, json=payload) as resp:
            chunks: list[bytes] = []
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("response body past timeout_s")
            return resp.status_code, resp.headers, b"".join(chunks)

    def map(self, n: int, one: Callable[[int], T], progress: Callable[[list[tuple[int, T]]], None] | None
             ) -> list[T]:
        """Run ``one(i)`` for ``i < n`` on ``concurrency`` daemon threads; ``progress`` runs in this thread
        per result. The first failure (or Ctrl-C) stops the rest: queued requests are not sent, running
        ones stop retrying, and a hanging one does not hold up the interpreter's exit."""
        out: dict[int, T] = {}
        stop = threading.Event()
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        results: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()
        for i in range(n):
            todo.put(i)

        def worker() -> None:
            self._local.stop = stop
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.put((i, one(i), None))
                except BaseException as exc:
                    stop.set()
                    results.put((i, None, exc))

        for _ in range(min(self.cfg.concurrency, n)):
            threading.Thread(target=worker, daemon=True, name="evalmon-openai").start()
        try:
            while len(out) < n:
                i, value, exc = results.get()
                if isinstance(exc, Cancelled):
                    continue
                if exc is not None:
                    raise exc
                out[i] = value
                if progress is not None:
                    progress([(i, value)])
        finally:
            stop.set()
        return [out[i] for i in range(n)]

    def close(self) -> None:
        self._client.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

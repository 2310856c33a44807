"""A scripted OpenAI-compatible chat server on 127.0.0.1 for judge-like tests: ``reply(prompt) -> text``.

It answers ``GET /models`` with one model and every ``POST`` (chat or completions) with ``reply`` of the last
user message (or the prompt), and records the prompts it was sent. A reply that is an ``int`` is sent as that
HTTP error status instead; ``None`` is a null ``content``. The real HTTP path of the ``openai``
backend runs against it (the brief: servers are started for real, never mocked)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    def __init__(self, reply: Callable[[str], str | int | None], model: str = "judge") -> None:
        self.prompts: list[str] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": model, "created": 1}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                srv.prompts.append(prompt)
                answer = reply(prompt)
                if isinstance(answer, int):  # an HTTP error status (a failing server)
                    self._send({"error": {"message": "scripted failure"}}, answer)
                    return
                msg = {"role": "assistant", "content": answer}
                self._send({"choices": [{"index": 0, "finish_reason": "stop", "message": msg}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5}})

            def _send(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

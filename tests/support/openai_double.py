"""A real HTTP test double of the OpenAI chat-completions protocol, bound to 127.0.0.1 on a free port.

The real `openai` client talks to it over a socket, so timeouts, retries, status codes and dropped connections
behave exactly as against a real server. It speaks only what our code needs:

    POST /v1/chat/completions  -> a ChatCompletion (choices[0].message.content, optional tool_calls, usage)
    GET  /v1/models            -> a one-model list

Import (tests/ is on sys.path through tests/conftest.py; `tests.support.openai_double` works from the repo root):

    from support.openai_double import OpenAIDouble, reply, http_error, rate_limited, hang, drop, bad_body

Scripted queue (one entry per request, in order):

    with OpenAIDouble([reply('{"ok": 1}'), http_error(500), rate_limited(retry_after=0.1)]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=0.5)
        client.chat.completions.create(model="m", messages=[...])
        assert srv.request_count == 1
        srv.requests[0]["body"]["messages"]     # the JSON body the client sent (auth headers never recorded)

Handler function (called for every request the queue does not answer; returns a reply):

    OpenAIDouble(handler=lambda body: reply(body["messages"][-1]["content"].upper()))

Replies (plain dicts built by these helpers; a handler may return any of them):

    reply(content, tool_calls=None, refusal=None, usage=None, finish_reason=None)   200, a normal completion;
        tool_calls = [(name, arguments_dict), ...]; usage = (prompt_tokens, completion_tokens), else estimated
    http_error(status=500, message="...")     that status with an OpenAI-style error body
    rate_limited(retry_after=0.1)             429 with a Retry-After header (seconds)
    hang(seconds=5.0)                         read the request, then answer nothing for `seconds` (past the
                                              client's timeout), then close; ended early by `stop()`
    drop()                                    close the socket without writing a response
    bad_body()                                200 whose body is not JSON

When neither queue nor handler answers, the double returns 500 "script exhausted" (and counts the request).
The pytest fixture `openai_double` yields a started, empty double; `push(*replies)` scripts it afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Reply = dict[str, Any]
_SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "openai-organization", "openai-project"}


def reply(
    content: str | None,
    tool_calls: Iterable[tuple[str, dict[str, Any]]] | None = None,
    refusal: str | None = None,
    usage: tuple[int, int] | None = None,
    finish_reason: str | None = None,
) -> Reply:
    """A normal 200 completion."""
    return {
        "kind": "reply",
        "content": content,
        "tool_calls": list(tool_calls or []),
        "refusal": refusal,
        "usage": usage,
        "finish_reason": finish_reason,
    }


def http_error(status: int = 500, message: str = "internal error (test double)") -> Reply:
    return {"kind": "http_error", "status": status, "message": message}


def rate_limited(retry_after: float = 0.1) -> Reply:
    return {"kind": "rate_limited", "retry_after": retry_after}


def hang(seconds: float = 5.0) -> Reply:
    return {"kind": "hang", "seconds": seconds}


def drop() -> Reply:
    return {"kind": "drop"}


def bad_body(content_type: str = "application/json") -> Reply:
    """A 200 whose body is not JSON (an HTML error page), under the given Content-Type."""
    return {"kind": "bad_body", "content_type": content_type}


class OpenAIDouble:
    """The server. `base_url` ends in /v1; `requests` lists what arrived; thread-safe; a context manager."""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        handler: Callable[[dict[str, Any]], Reply] | None = None,
        model: str = "double-model",
    ) -> None:
        self._queue: deque[Reply] = deque(script)
        self._handler = handler
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> OpenAIDouble:
        double = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/").endswith("/models"):
                    double._send_json(self, 200, {"object": "list", "data": [{"id": double.model}]})
                else:
                    double._send_json(self, 404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                double._handle_post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- scripting and inspection ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def set_handler(self, handler: Callable[[dict[str, Any]], Reply] | None) -> None:
        self._handler = handler

    # -- serving --------------------------------------------------------------------------------------------
    def _handle_post(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in h.headers.items() if k.lower() not in _SECRET_HEADERS}
        with self._lock:
            self.requests.append({"path": h.path, "headers": headers, "body": body, "time": time.monotonic()})
            nxt = self._queue.popleft() if self._queue else None
        if not h.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(h, 404, {"error": {"message": f"no route {h.path}"}})
            return
        if nxt is None and self._handler is not None:
            nxt = self._handler(body)
        if nxt is None:
            nxt = http_error(500, "script exhausted (test double)")
        self._serve(h, nxt, body)

    def _serve(self, h: BaseHTTPRequestHandler, r: Reply, body: dict[str, Any]) -> None:
        kind = r["kind"]
        if kind == "reply":
            self._send_json(h, 200, self._completion(r, body))
        elif kind == "http_error":
            err = {"error": {"message": r["message"], "type": "server_error", "code": None}}
            self._send_json(h, r["status"], err)
        elif kind == "rate_limited":
            err = {"error": {"message": "rate limited (test double)", "type": "rate_limit", "code": None}}
            self._send_json(h, 429, err, {"Retry-After": f"{r['retry_after']:g}"})
        elif kind == "hang":
            self._stopping.wait(r["seconds"])
            self._close(h)
        elif kind == "drop":
            self._close(h)
        elif kind == "bad_body":
            payload = b"<html>this is not json"
            h.send_response(200)
            h.send_header("Content-Type", r.get("content_type", "application/json"))
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        else:  # pragma: no cover - a test wrote a bad script
            raise ValueError(f"unknown reply kind {kind!r}")

    def _completion(self, r: Reply, body: dict[str, Any]) -> dict[str, Any]:
        tool_calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(r["tool_calls"])
        ]
        message: dict[str, Any] = {"role": "assistant", "content": r["content"], "refusal": r["refusal"]}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if r["usage"] is not None:
            prompt_tokens, completion_tokens = r["usage"]
        else:  # a rough estimate: four characters a token
            prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
            completion_tokens = len(r["content"] or "") // 4
        finish = r["finish_reason"] or ("tool_calls" if tool_calls else "stop")
        return {
            "id": f"chatcmpl-double-{self.request_count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _send_json(
        h: BaseHTTPRequestHandler, status: int, obj: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        for k, v in (extra_headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    @staticmethod
    def _close(h: BaseHTTPRequestHandler) -> None:
        """Close the connection with no response: the client sees the peer hang up."""
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.connection.close()


@pytest.fixture
def openai_double() -> Iterator[OpenAIDouble]:
    """A started, empty double; script it with `push(...)` or `set_handler(...)`."""
    with OpenAIDouble() as srv:
        yield srv

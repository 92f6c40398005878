"""Chat backends the LLM summarizer asks: any OpenAI-compatible endpoint, or a local transformers model.

A backend turns chat messages into one reply text, or raises `SummarizerFailure(cause)`; it never returns
half an answer. Causes: timeout, connection, rate_limit, http_5xx, http_4xx, bad_response, refusal, empty,
budget, error.

`OpenAIBackend` uses the real `openai` client with its own retries switched off (`max_retries=0`) and does the
retrying here, so every attempt is counted against the budget: exponential backoff with jitter
(`min(backoff_max, backoff_base * 2**attempt) * U(0.5, 1)`) on timeouts, dropped connections, 429, 5xx and
unparsable bodies; a 429's Retry-After (seconds or an HTTP date, capped at `retry_after_max`) is waited out if
longer. Other 4xx fail at once. A semaphore caps requests in flight (the concurrency limit). The API key is
read from the environment variable the config names, at client creation, and is never logged or stored.

`Budget` caps requests and tokens per run (one object shared by every group the summarizer handles).
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any


class SummarizerFailure(Exception):
    """The backend could not produce a usable reply; `cause` names why (a metrics key)."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause


@dataclass
class BackendReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Budget:
    """Per-run request and token caps (None = unlimited); thread-safe."""

    def __init__(self, max_requests: int | None = None, max_tokens: int | None = None) -> None:
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.requests = 0
        self.tokens = 0
        self._lock = threading.Lock()

    def take_request(self) -> None:
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                raise SummarizerFailure("budget", f"request budget of {self.max_requests} spent")
            if self.max_tokens is not None and self.tokens >= self.max_tokens:
                raise SummarizerFailure("budget", f"token budget of {self.max_tokens} spent")
            self.requests += 1

    def add_tokens(self, n: int) -> None:
        with self._lock:
            self.tokens += n


@dataclass
class OpenAIConfig:
    """How to reach an OpenAI-compatible endpoint (field comments are the CLI help)."""

    model: str
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang); None = the client's default
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key (not the key)
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # extra attempts after the first, on timeouts, dropped connections, 429 and 5xx
    backoff_base: float = 0.5  # seconds; doubled each attempt, with jitter
    backoff_max: float = 8.0
    retry_after_max: float = 30.0  # longest Retry-After honoured
    json_mode: bool = True  # send response_format={"type": "json_object"}
    max_output_tokens: int = 1500
    max_concurrency: int = 4  # requests in flight at once

    def time_bound_s(self) -> float:
        """Longest one `complete()` can take: every attempt timing out, every wait at its cap."""
        waits = sum(
            max(min(self.backoff_max, self.backoff_base * 2**a), self.retry_after_max)
            for a in range(self.retries)
        )
        return (self.retries + 1) * self.timeout + waits


def _retry_after(exc: Any) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class _BadResponse(Exception):
    """The server answered 200 with something that is not a chat completion (retried as bad_response)."""


class OpenAIBackend:
    def __init__(self, cfg: OpenAIConfig, budget: Budget, counter: Any, seed: int = 0) -> None:
        self.cfg, self.budget, self.counter = cfg, budget, counter
        self._sem = threading.BoundedSemaphore(max(1, cfg.max_concurrency))
        self._rng = random.Random(seed)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                key = os.environ.get(self.cfg.api_key_env) or "EMPTY"  # local servers take any key
                self._client = openai.OpenAI(
                    base_url=self.cfg.base_url, api_key=key, max_retries=0, timeout=self.cfg.timeout
                )
            return self._client

    def time_bound_s(self) -> float:
        return self.cfg.time_bound_s()

    def _backoff(self, attempt: int) -> float:
        return min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt) * (
            0.5 + 0.5 * self._rng.random()
        )

    def _once(self, messages: list[dict[str, str]]) -> BackendReply:
        kwargs: dict[str, Any] = {"model": self.cfg.model, "messages": messages, "temperature": 0}
        kwargs["max_tokens"] = self.cfg.max_output_tokens
        if self.cfg.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        with self._sem:
            resp = self._get_client().chat.completions.create(**kwargs)
        if not hasattr(resp, "choices"):  # a 200 that is not a completion (an HTML page, a proxy's text)
            raise _BadResponse(f"a 200 answer that is not a chat completion: {str(resp)[:80]!r}")
        usage = getattr(resp, "usage", None)
        pt, ct = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
        self.budget.add_tokens(pt + ct)
        self.counter("prompt_tokens", pt)
        self.counter("completion_tokens", ct)
        if not resp.choices:
            raise SummarizerFailure("empty", "no choices")
        msg = resp.choices[0].message
        if getattr(msg, "refusal", None):
            raise SummarizerFailure("refusal", str(msg.refusal)[:200])
        if not (msg.content or "").strip():
            raise SummarizerFailure("empty", "no content")
        return BackendReply(msg.content, pt, ct)

    def complete(self, messages: list[dict[str, str]]) -> BackendReply:
        import openai

        cause = "error"
        for attempt in range(self.cfg.retries + 1):
            self.budget.take_request()
            self.counter("requests", 1)
            wait = self._backoff(attempt)
            try:
                return self._once(messages)
            except openai.APITimeoutError:
                cause = "timeout"
            except openai.APIConnectionError:
                cause = "connection"
            except openai.RateLimitError as exc:
                cause = "rate_limit"
                after = _retry_after(exc)
                if after is not None:
                    wait = max(wait, min(after, self.cfg.retry_after_max))
            except openai.APIStatusError as exc:
                if exc.status_code < 500:
                    raise SummarizerFailure("http_4xx", f"HTTP {exc.status_code}") from None
                cause = "http_5xx"
            except (json.JSONDecodeError, _BadResponse, openai.APIResponseValidationError):
                cause = "bad_response"
            self.counter(f"retry/{cause}", 1)
            if attempt < self.cfg.retries:
                time.sleep(wait)
        raise SummarizerFailure(cause, f"after {self.cfg.retries + 1} attempts")


class HFBackend:
    """A local transformers model (through `sgcd.policy.models.load_policy`) as the summarizer; greedy."""

    def __init__(self, model: str, budget: Budget, counter: Any, max_new_tokens: int = 768) -> None:
        self.model, self.budget, self.counter = model, budget, counter
        self.max_new_tokens = max_new_tokens
        self._policy: Any = None
        self._lock = threading.Lock()  # one model, one request at a time

    def complete(self, messages: list[dict[str, str]]) -> BackendReply:
        from sgcd.policy.base import SamplingParams
        from sgcd.types import Message

        with self._lock:
            self.budget.take_request()
            self.counter("requests", 1)
            try:
                if self._policy is None:
                    from sgcd.policy.models import load_policy

                    self._policy = load_policy(self.model)
                ids = self._policy.encode_prompt([Message(m["role"], m["content"]) for m in messages], [])
                params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=self.max_new_tokens)
                (out,) = self._policy.generate([list(ids)], params)
            except Exception as exc:  # noqa: BLE001 - a broken local model must not stop training
                raise SummarizerFailure("error", f"{type(exc).__name__}: {exc}"[:200]) from None
        self.budget.add_tokens(len(ids) + len(out.token_ids))
        self.counter("prompt_tokens", len(ids))
        self.counter("completion_tokens", len(out.token_ids))
        if not out.text.strip():
            raise SummarizerFailure("empty", "no text")
        return BackendReply(out.text, len(ids), len(out.token_ids))

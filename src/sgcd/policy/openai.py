"""OpenAIAgent: a TextAgent over any OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs).

Used for evaluation (`sgcd eval --policy openai:MODEL --base-url URL`); it produces text, not token ids, so it
never trains. The real `openai` client does the HTTP work: per-request timeout, retries with backoff (it honours
Retry-After on 429/5xx), and the API key read from an environment variable (never logged or echoed in errors).

Tools, two modes:
    native (default)  the schemas go in the request's `tools` field; our Hermes-style history is translated to
                      OpenAI's shape (assistant `tool_calls` with ids, `tool` messages answering those ids).
    text              the schemas are rendered into the system prompt exactly as the HF policy does
                      (sgcd.policy.chat.render_tools, in the format the domain's schemas ask for: JSON or
                      compact), tool results go back as `<tool_response>` user turns;
                      for servers started without a tool parser.
Either way the returned tool calls become `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` text, which
the environments parse, so an OpenAI agent and a local model are scored by one code path.

Errors: a connection failure (after the client's retries), 401/403 (the key) and 404 (model or path) raise
`OpenAIEndpointError`, an `EndpointError`: the endpoint is broken, no episode can be scored. Anything else that
fails one request (400, a timeout or 5xx after retries, a malformed answer) raises `OpenAIAgentError` and fails
that episode.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sgcd.policy.base import EndpointError
from sgcd.policy.chat import plain_tools, with_tool_block
from sgcd.types import Message

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


class OpenAIAgentError(RuntimeError):
    """A request failed after the client's retries (the message names model, server and cause, never the key)."""


class OpenAIEndpointError(OpenAIAgentError, EndpointError):
    """The server cannot be reached, refused the API key, or does not know the model or path."""


def endpoint_error(
    exc: Exception, model: str, base_url: str | None, key_env: str
) -> OpenAIEndpointError | None:
    """The one-line endpoint error for `exc`, or None when `exc` is a per-request failure."""
    import openai

    where = base_url or "the default API"
    if isinstance(exc, openai.APITimeoutError):  # one slow answer fails its episode, not the endpoint
        return None
    if isinstance(exc, openai.APIConnectionError):
        return OpenAIEndpointError(
            f"endpoint {where} cannot be reached ({type(exc).__name__}: {_scrub(str(exc))[:80]}); start the "
            "server or fix the URL"
        )
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return OpenAIEndpointError(
            f"endpoint {where} refused the API key (HTTP {exc.status_code}); set ${key_env} or pass --api-key-env"
        )
    if isinstance(exc, openai.NotFoundError):
        return OpenAIEndpointError(
            f"endpoint {where} answered 404 for model {model!r}: check the model name and the URL (it usually "
            "ends in /v1)"
        )
    return None


@dataclass
class AgentStats:
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class OpenAIAgent:
    model: str
    base_url: str | None = None  # None: the client's default (api.openai.com)
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3  # the client's retries (exponential backoff, Retry-After honoured)
    temperature: float = 1.0
    top_p: float | None = None
    max_tokens: int = 1024
    tool_mode: str = "native"  # native | text
    stats: AgentStats = field(default_factory=AgentStats)

    def __post_init__(self) -> None:
        import openai

        if self.tool_mode not in ("native", "text"):
            raise ValueError(f"tool_mode {self.tool_mode!r}: choose native or text")
        # Local servers (vLLM, SGLang) accept any key; hosted APIs need the variable set.
        key = os.environ.get(self.api_key_env) or "EMPTY"
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=self.max_retries
        )

    def act(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> str:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.tool_mode == "native":
            kwargs["messages"] = native_messages(messages)
            if tools:
                kwargs["tools"] = plain_tools(tools)
        else:
            kwargs["messages"] = text_messages(messages, tools)
        self.stats.requests += 1
        try:
            resp = self._client.chat.completions.create(**kwargs)
            message = resp.choices[0].message
        except (openai.OpenAIError, IndexError, AttributeError, TypeError) as exc:
            self.stats.failures += 1
            fatal = endpoint_error(exc, self.model, self.base_url, self.api_key_env)
            if fatal is not None:
                raise fatal from None
            raise OpenAIAgentError(
                f"chat completion for model {self.model!r} at {self.base_url or 'default API'} failed "
                f"after {self.max_retries} retries: {type(exc).__name__}: {_scrub(str(exc))[:200]}"
            ) from None
        if resp.usage is not None:
            self.stats.prompt_tokens += resp.usage.prompt_tokens or 0
            self.stats.completion_tokens += resp.usage.completion_tokens or 0
        return reply_text(message)


def reply_text(message: Any) -> str:
    """The assistant's content, then each returned tool call as a `<tool_call>` block (Hermes text)."""
    parts = [message.content.strip()] if message.content else []
    for call in getattr(message, "tool_calls", None) or []:
        raw = call.function.arguments or "{}"
        try:
            args: Any = json.loads(raw)
        except json.JSONDecodeError:
            args = raw  # left as a string: the environment reports it as malformed arguments
        parts.append(f"<tool_call>{json.dumps({'name': call.function.name, 'arguments': args})}</tool_call>")
    return "\n".join(parts)


def native_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Hermes-text history -> OpenAI messages with tool_calls / tool_call_id pairs.

    Tool messages answer the previous assistant's calls in order; any left over (error notes with no call) go
    back as user turns, and calls left unanswered get an empty tool answer, as the protocol requires.
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn, m in enumerate(messages):
        if m.role == "tool" and pending:
            out.append({"role": "tool", "tool_call_id": pending.pop(0), "content": m.content})
            continue
        out += [{"role": "tool", "tool_call_id": cid, "content": ""} for cid in pending]
        pending = []
        if m.role == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m.content}\n</tool_response>"})
        elif m.role == "assistant" and "<tool_call>" in m.content:
            calls = []
            for k, block in enumerate(_BLOCK.findall(m.content)):
                try:
                    obj = json.loads(block)
                    name, args = obj["name"], obj.get("arguments", {})
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
                cid = f"call_{turn}_{k}"
                calls.append(
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": str(name), "arguments": json.dumps(args)},
                    }
                )
                pending.append(cid)
            text = _BLOCK.sub("", m.content).strip()
            out.append(
                {"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})}
            )
        else:
            out.append({"role": m.role, "content": m.content})
    out += [{"role": "tool", "tool_call_id": cid, "content": ""} for cid in pending]
    return out


def text_messages(messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """History kept as Hermes text: tools in the system prompt, tool results as `<tool_response>` user turns."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m.content}\n</tool_response>"})
        else:
            out.append({"role": m.role, "content": m.content})
    return with_tool_block(out, tools)


def _scrub(text: str) -> str:
    """Remove anything shaped like an API key from an error message."""
    return re.sub(r"(sk|key|Bearer)[-_ ]?[A-Za-z0-9_\-]{8,}", "[redacted]", text)

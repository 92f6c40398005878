"""Simulated users of tau^3-airline: a deterministic scripted user and an LLM user over the OpenAI protocol.

Both speak tau2's protocol: the user receives the agent's messages to the user (never tool traffic) and ends
the conversation with `###STOP###` (task done), `###TRANSFER###` (handed to a human) or `###OUT-OF-SCOPE###`
(scenario exhausted); any of the three ends the episode as a user stop, which the evaluator scores.

- `ScriptedUser` (`--user scripted`): opens with the scenario's reason for calling and known information,
  answers an agent question (a message containing '?') with the known information, and sends `###STOP###` to
  any other agent message, or once it has answered `max_replies` questions. Deterministic; for tests, plumbing
  and scripted policies, not a stand-in for the paper's LLM user.
- `OpenAIUser` (`--user openai:MODEL --user-base-url URL`): an LLM plays the user with tau2's role flip (the
  agent's messages become the LLM's `user` turns, its own replies `assistant` turns), temperature 0 by default
  as in tau2. The API key comes from $SGCD_USER_API_KEY, else $OPENAI_API_KEY, else "EMPTY" (local servers);
  it is never logged. A failed or empty completion (after the client's retries) raises `UserError`, which the
  environment turns into a `user_error` ending (reward 0), as tau2 does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

STOP = "###STOP###"
TRANSFER = "###TRANSFER###"
OUT_OF_SCOPE = "###OUT-OF-SCOPE###"
STOP_TOKENS = (STOP, TRANSFER, OUT_OF_SCOPE)
API_KEY_ENVS = ("SGCD_USER_API_KEY", "OPENAI_API_KEY")


def user_stop_token(text: str) -> str | None:
    """The first termination token found in a user message, else None."""
    return next((tok for tok in STOP_TOKENS if tok in text), None)


class UserError(RuntimeError):
    """The user simulator could not produce a message (endpoint down, empty reply)."""


class UserSimulator(Protocol):
    def start(self, greeting: str) -> str:
        """The user's first message, in answer to the agent's greeting."""
        ...

    def reply(self, agent_text: str) -> str:
        """The user's answer to an agent message (may carry a termination token)."""
        ...


@dataclass
class ScriptedUser:
    """Deterministic user from the scenario's structured instructions (see module docstring)."""

    scenario: dict[str, Any]
    max_replies: int = 3
    replies: int = 0

    def _instructions(self) -> dict[str, Any]:
        inst = self.scenario.get("instructions")
        return inst if isinstance(inst, dict) else {"reason_for_call": str(inst or "")}

    def start(self, greeting: str) -> str:
        inst = self._instructions()
        parts = [inst.get("reason_for_call") or "", inst.get("known_info") or ""]
        return "\n".join(p.strip() for p in parts if p and p.strip()) or "I need help with my booking."

    def reply(self, agent_text: str) -> str:
        if "?" in agent_text and self.replies < self.max_replies:
            self.replies += 1
            known = (self._instructions().get("known_info") or "").strip()
            return known or "I don't have that information."
        return STOP


@dataclass
class OpenAIUser:
    """LLM user simulator on any OpenAI-compatible chat endpoint (see module docstring)."""

    system_prompt: str
    model: str
    base_url: str | None = None
    temperature: float = 0.0
    timeout: float = 120.0
    max_retries: int = 3
    max_tokens: int | None = None
    client: Any = None
    history: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = openai_client(self.base_url, self.timeout, self.max_retries)
        self.history = [{"role": "system", "content": self.system_prompt}]

    def _complete(self, agent_text: str) -> str:
        self.history.append({"role": "user", "content": agent_text})  # the agent, seen from the user's side
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self.history,
            "temperature": self.temperature,
        }
        if self.max_tokens:
            kwargs["max_tokens"] = self.max_tokens
        try:
            response = self.client.chat.completions.create(**kwargs)
        except Exception as exc:  # every transport / HTTP failure, after the client's own retries
            raise UserError(f"user simulator {self.model!r} failed: {type(exc).__name__}: {exc}") from exc
        choices = getattr(response, "choices", None) or []
        content = (choices[0].message.content or "") if choices else ""
        if not content.strip():
            raise UserError(f"user simulator {self.model!r} returned an empty message")
        self.history.append({"role": "assistant", "content": content})
        return content

    def start(self, greeting: str) -> str:
        return self._complete(greeting)

    def reply(self, agent_text: str) -> str:
        return self._complete(agent_text)


def openai_client(base_url: str | None, timeout: float, max_retries: int) -> Any:
    """An `openai.OpenAI` client whose key comes from the environment (never logged)."""
    import openai

    key = next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), "EMPTY")
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)


UserFactory = Callable[[dict[str, Any]], UserSimulator]


def parse_user_spec(spec: str) -> tuple[str, str | None]:
    """("scripted", None) or ("openai", MODEL); a clear ValueError for anything else."""
    spec = (spec or "").strip()
    if spec == "scripted":
        return "scripted", None
    kind, _, model = spec.partition(":")
    if kind == "openai" and model.strip():
        return "openai", model.strip()
    raise ValueError(f"user must be 'scripted' or 'openai:MODEL', got {spec!r}")


def make_user_factory(
    spec: str = "scripted",
    *,
    base_url: str | None = None,
    prompt_source: str = "sgcd",
    temperature: float = 0.0,
    max_replies: int = 3,
    timeout: float = 120.0,
    max_retries: int = 3,
) -> UserFactory:
    """A function task -> fresh user simulator, from a `--user` spec (checked before any episode runs)."""
    from sgcd.envs.tau3_airline.prompts import user_system_prompt

    kind, model = parse_user_spec(spec)
    if kind == "scripted":
        return lambda task: ScriptedUser(task.get("user_scenario") or {}, max_replies=max_replies)
    if prompt_source not in ("sgcd", "tau2"):
        raise ValueError(f"user_prompt must be 'sgcd' or 'tau2', got {prompt_source!r}")
    if not base_url and not os.environ.get("OPENAI_BASE_URL"):
        raise ValueError("an LLM user needs --user-base-url URL (an OpenAI-compatible endpoint)")

    shared: list[
        Any
    ] = []  # one client (one connection pool) for all users of this factory, made on first use

    def factory(task: dict[str, Any]) -> UserSimulator:
        prompt = user_system_prompt(task.get("user_scenario") or {}, prompt_source)
        if not shared:
            shared.append(openai_client(base_url, timeout, max_retries))
        return OpenAIUser(prompt, str(model), base_url, temperature, timeout, max_retries, client=shared[0])

    return factory

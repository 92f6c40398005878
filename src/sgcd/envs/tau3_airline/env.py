"""One tau^3-airline episode: Hermes-text agent turns, tool calls on the upstream toolkit, a simulated user.

The loop follows tau2's orchestrator. The user simulator opens by answering tau2's fixed agent greeting;
`reset()` returns the system prompt (instructions + policy) and that first user message. Each
`step(assistant_text)` is one agent message:

- with `<tool_call>` markup: the calls run in order on this episode's database; the results come back as tool
  messages (errors as `Error: ...` observations, never exceptions);
- without: it is a message to the user, who answers (the answer comes back as a user message) or ends the
  conversation with a termination token. As in tau2's conversation mode, the agent cannot end it: an agent
  `###STOP###` is just text the user reads (tau2 honours it only for solo agents).

Step accounting is tau2's: the agent message, the batch of tool results and the user message each count one
step (the greeting does not); after every step that is not addressed to the tools, reaching `max_steps` (200)
or `max_errors` failed calls (10) ends the episode with reward 0, overriding a stop in the same step.

Departures: the agent's messages start at the user's first message (tau2 also shows the agent its own
greeting; it carries no information, is still given to the user and to COMMUNICATE, and leaving it out keeps
"assistant turn k" = "agent action k" for every policy); malformed tool-call markup (broken JSON, a bad
block) becomes an `Error:` observation and counts as a failed call, since text-level agents can produce it and
API-level tau2 agents cannot; an empty agent message ends the episode as `agent_error` (tau2 rejects such a
message outright); a user simulator failure ends it as `user_error`. All three score 0.

The last StepResult carries `info["episode"]` (an Episode with per-call `is_write`) and the verifier's
breakdown (`info["verifier"]`, `info["reward_breakdown"]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sgcd.envs.base import Task
from sgcd.envs.tau3_airline.data import AirlineData
from sgcd.envs.tau3_airline.evaluator import Evaluator, Verdict
from sgcd.envs.tau3_airline.prompts import GREETING, agent_system_prompt
from sgcd.envs.tau3_airline.tools import Toolkit, is_write_tool
from sgcd.envs.tau3_airline.users import UserError, UserSimulator, user_stop_token
from sgcd.envs.toolcalls import has_tool_markup, parse_tool_calls
from sgcd.types import CallRecord, Episode, Message, Observation, Step, StepResult, ToolCall

_MARKUP = re.compile(r"<tool_call>.*?(</tool_call>|$)", re.DOTALL)


@dataclass(frozen=True)
class Limits:
    """tau2's per-simulation limits (its CLI defaults)."""

    max_steps: int = 200  # agent messages + tool-result batches + user messages
    max_errors: int = 10  # failed tool calls (and malformed markup, here)

    def __post_init__(self) -> None:
        if self.max_steps < 2 or self.max_errors < 1:
            raise ValueError(f"limits must be max_steps >= 2 and max_errors >= 1, got {self}")


def prose(text: str) -> str:
    """The text of an agent turn outside its tool-call blocks (what tau2 would hold as message content)."""
    return _MARKUP.sub("", text).strip()


class Tau3AirlineEnv:
    """A single-use episode of one task (see module docstring)."""

    def __init__(
        self,
        task: Task,
        data: AirlineData,
        evaluator: Evaluator,
        user: UserSimulator,
        tools: tuple[dict[str, Any], ...],
        limits: Limits = Limits(),
    ) -> None:
        self.task, self.data, self.evaluator, self.user, self.tools, self.limits = (
            task,
            data,
            evaluator,
            user,
            tools,
            limits,
        )
        self.toolkit: Toolkit | None = None  # made at reset(), dropped once scored (a database is ~20 MB)
        self.messages: list[Message] = []
        self.steps: list[Step] = []
        self.calls: list[ToolCall] = []  # the agent's calls as executed, in order: what the evaluator replays
        self.texts: list[str] = []  # assistant message texts (COMMUNICATE looks here)
        self.step_count = 0
        self.num_errors = 0  # tau2's error count: failed calls + (here) malformed markup
        self.format_errors = 0
        self.writes = 0
        self.started = False
        # "" while running; then user_stop | max_steps | too_many_errors | agent_error | user_error
        self.termination = ""
        self.note = ""
        self.verdict: Verdict | None = None

    @property
    def done(self) -> bool:
        return bool(self.termination)

    # -- the two protocol methods ------------------------------------------------------------------------
    def reset(self) -> Observation:
        if self.started:
            raise RuntimeError(
                f"tau3-airline env for task {self.task.task_id} is single-use; build a new one"
            )
        self.started = True
        self.toolkit = Toolkit(self.data)
        self.texts.append(GREETING)
        try:
            first = self.user.start(GREETING)
        except UserError as exc:
            first, self.termination, self.note = "", "user_error", str(exc)
        self.step_count = 1
        if user_stop_token(first):
            self.termination = "user_stop"
        self.messages = [
            Message(role="system", content=agent_system_prompt(self.data.policy)),
            Message(role="user", content=first),
        ]
        return Observation(messages=tuple(self.messages), tools=self.tools)

    def step(self, assistant_text: str) -> StepResult:
        if not self.started:
            raise RuntimeError("call reset() before step()")
        if self.done:  # over already (e.g. the user left at once): the same final result, nothing appended
            return self._final(None)
        text = assistant_text if isinstance(assistant_text, str) else str(assistant_text)
        self.messages.append(Message(role="assistant", content=text))
        self.step_count += 1
        calls, errors = parse_tool_calls(text)
        if calls or errors or has_tool_markup(text):
            return self._tool_turn(text, calls, errors)
        return self._message_turn(text)

    # -- turns -------------------------------------------------------------------------------------------
    def _tool_turn(self, text: str, calls: list[ToolCall], errors: list[str]) -> StepResult:
        out = [Message(role="tool", name="error", content=f"Error: {err}") for err in errors]
        self.num_errors += len(errors)
        self.format_errors += len(errors)
        records = []
        assert self.toolkit is not None  # set at reset(), cleared only once done
        for call in calls:
            output, failed = self.toolkit.call(call.name, dict(call.arguments))
            write = is_write_tool(call.name)
            self.calls.append(call)
            self.num_errors += int(failed)
            self.writes += int(write and not failed)
            records.append(CallRecord(call.name, call.arguments, output, error=failed, is_write=write))
            out.append(Message(role="tool", name=call.name, content=output))
        if prose(text):
            self.texts.append(prose(text))
        self.step_count += 1  # the tool results
        failed_turn = bool(errors) or any(r.error for r in records)
        observation = "\n".join(m.content for m in out)
        step = Step(len(self.steps), text, tuple(records), observation=observation, error=failed_turn)
        self.steps.append(step)
        self.messages.extend(out)
        if self._check_limits():
            return self._final(step)
        return StepResult(messages=tuple(out), done=False, info=self._info(step))

    def _message_turn(self, text: str) -> StepResult:
        self.texts.append(text)
        if not text.strip():
            self.termination, self.note = "agent_error", "empty agent message"
        if self._check_limits() or self.done:
            step = Step(len(self.steps), text, final=True, error=self.termination == "agent_error")
            self.steps.append(step)
            return self._final(step)
        try:
            answer = self.user.reply(text)
        except UserError as exc:
            self.termination, self.note = "user_error", str(exc)
            step = Step(len(self.steps), text, final=True)
            self.steps.append(step)
            return self._final(step)
        self.step_count += 1  # the user's message
        reply = Message(role="user", content=answer)
        self.messages.append(reply)
        if user_stop_token(answer):
            self.termination = "user_stop"
        step = Step(len(self.steps), text, observation=answer, final=True)
        self.steps.append(step)
        if self._check_limits() or self.done:
            return self._final(step)
        return StepResult(messages=(reply,), done=False, info=self._info(step))

    def _check_limits(self) -> bool:
        """tau2's checks after a step addressed to the agent or the user; they override a stop."""
        if self.step_count >= self.limits.max_steps:
            self.termination, self.note = "max_steps", f"max_steps ({self.limits.max_steps}) reached"
        if self.num_errors >= self.limits.max_errors:
            self.termination, self.note = "too_many_errors", f"max_errors ({self.limits.max_errors}) reached"
        return self.termination in ("max_steps", "too_many_errors")

    # -- results -----------------------------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        return {
            "steps": self.step_count,
            "turns": len(self.steps),
            "calls": len(self.calls),
            "errors": self.num_errors,
            "tool_errors": self.num_errors - self.format_errors,
            "format_errors": self.format_errors,
            "writes": self.writes,
        }

    def _info(self, step: Step | None) -> dict[str, Any]:
        info: dict[str, Any] = {"counts": self._counts()}
        if step is not None:
            info["step"] = step
            info["error"] = step.error
        return info

    def _final(self, step: Step | None) -> StepResult:
        if self.verdict is None:
            self.verdict = self.evaluator.evaluate(
                self.task.data, self.calls, self.texts, self.termination, live=self.toolkit
            )
            self.toolkit = None
        info = self._info(step)
        info.update(
            reason=self.termination,
            termination=self.termination,
            verifier=self.verdict.to_info(),
            reward_breakdown={"db": self.verdict.db, "communicate": self.verdict.communicate},
            episode=self.episode(),
        )
        return StepResult(messages=(), done=True, reward=self.verdict.reward, info=info)

    def episode(self) -> Episode:
        """The episode so far (final once done), with the verifier's breakdown in `info`."""
        verdict = self.verdict.to_info() if self.verdict is not None else {}
        reward = self.verdict.reward if self.verdict is not None else 0.0
        return Episode(
            task_id=self.task.task_id,
            messages=tuple(self.messages),
            steps=tuple(self.steps),
            reward=reward,
            success=self.verdict is not None and reward >= 1.0,
            info={
                "domain": "tau3-airline",
                "family": self.task.family,
                "split": self.task.split,
                "reason": self.termination,
                "termination": self.termination,
                "note": self.note,
                "verifier": verdict,
                "reward_breakdown": {k: verdict[k] for k in ("db", "communicate")} if verdict else {},
                "counts": self._counts(),
            },
        )

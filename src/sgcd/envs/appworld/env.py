"""The AppWorld environment: the agent writes Python, a worker's world executes it, AppWorld's evaluator scores.

Code mode (AppWorld's own interface): each assistant turn carries one or more fenced ```python blocks; they run in
one persistent IPython session of the task's world (`apis.<app>.<api>(...)`), and the printed output comes back as
the next user message. The episode ends when the agent calls `apis.supervisor.complete_task(...)`, or at
`max_turns`; either way AppWorld's `evaluate()` runs its ground-truth tests: reward 1.0 when all pass, else 0.0, with
pass_count / fail_count / pass_fraction in `info`.

Function-call mode (optional, ours): tools named `app__api` (AppWorld's own function-calling docs) in Hermes
`<tool_call>` tags; each call runs as `print(apis.app.api(**arguments))` in the same session.

Faults never raise out of `step`: a hung action (killed at `action_timeout_s`) or a crashed worker ends the episode
as failed with the reason in `info["failure"]`, and the worker is replaced. Departure from AppWorld: a turn with no
code gets an error observation and counts towards `max_turns` (AppWorld's agents loop until their own limit).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sgcd.envs.appworld.pool import WorkerDied, WorkerError, WorkerPool
from sgcd.envs.base import Task
from sgcd.types import CallRecord, Episode, Message, Observation, Step, StepResult

_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EnvLimits:
    """Per-episode limits. max_turns: assistant turns. action_timeout_s: hard deadline of one action (the worker
    is killed past it). appworld_timeout_s: AppWorld's own in-process limit (an observation, episode goes on).
    open_timeout_s: loading a world. max_output_chars: longest observation (middle elided)."""

    max_turns: int = 40
    action_timeout_s: float = 90.0
    appworld_timeout_s: int = 60
    open_timeout_s: float = 300.0
    max_output_chars: int = 6000
    mode: str = "code"  # code | function


SYSTEM_PROMPT = """You are an autonomous agent doing a task for your supervisor, {name} ({email}, phone {phone}), \
by writing Python that operates the apps on their phone. Today is {today}.

How to act:
- In each reply, think briefly, then write exactly one fenced code block:
```python
# your code
```
- The code runs in a persistent Python session: variables and functions stay defined between replies. Only \
print() output is shown back to you, so print what you need to see.
- Apps are called as `apis.<app_name>.<api_name>(**arguments)`. Look them up before use: \
`apis.api_docs.show_api_descriptions(app_name=...)` lists an app's APIs, \
`apis.api_docs.show_api_doc(app_name=..., api_name=...)` shows one API's parameters.
- Your supervisor's account passwords, profile, addresses and payment cards are in the `supervisor` app.
- Work autonomously: never ask for input. Do only what the task asks.
- When done, call `apis.supervisor.complete_task(answer=...)` with the answer if the task asks a question, \
or `apis.supervisor.complete_task()` otherwise. This ends the task.

Apps:
{apps}"""

FUNCTION_PROMPT_TAIL = """

In this session you call APIs as tools instead of writing code: each call is
<tool_call>{{"name": "<app_name>__<api_name>", "arguments": {{...}}}}</tool_call>
and its JSON result comes back. Finish with the tool supervisor__complete_task."""


def render_system_prompt(opened: dict[str, Any], mode: str = "code") -> str:
    who = opened["supervisor"]
    apps = "\n".join(f"- {name}: {desc}" for name, desc in opened["apps"].items())
    text = SYSTEM_PROMPT.format(
        name=f"{who['first_name']} {who['last_name']}",
        email=who["email"],
        phone=who["phone_number"],
        today=opened["datetime"].replace("T", " "),
        apps=apps,
    )
    return text + (FUNCTION_PROMPT_TAIL if mode == "function" else "")


def extract_code(text: str) -> str | None:
    """The fenced python blocks of a reply, joined in order; None when there is none."""
    blocks = [b.strip("\n") for b in _CODE_BLOCK.findall(text)]
    blocks = [b for b in blocks if b.strip()]
    return "\n".join(blocks) if blocks else None


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n...[{len(text) - 2 * half} characters elided]...\n{text[-half:]}"


def call_to_code(name: str, arguments: dict[str, Any]) -> str | None:
    """`app__api` + arguments -> one line of code for the session; None when the name is not of that form."""
    app, sep, api = name.partition("__")
    if not sep or not _IDENT.match(app) or not _IDENT.match(api):
        return None
    return f"print(apis.{app}.{api}(**json.loads({json.dumps(json.dumps(arguments))})))"


class AppWorldEnv:
    """One episode of one AppWorld task, on a worker borrowed from `pool` from reset() to the end."""

    def __init__(self, task: Task, pool: WorkerPool, limits: EnvLimits, tools: tuple[dict, ...] = ()):
        self.task = task
        self.pool = pool
        self.limits = limits
        self.tools = tools if limits.mode == "function" else ()
        self._worker = None
        self._messages: list[Message] = []
        self._steps: list[Step] = []
        self._turn = 0
        self._done = False
        self._final: StepResult | None = None

    def reset(self) -> Observation:
        """Borrow a worker, open the task's world (one retry on a fresh worker if the first one dies)."""
        if self._worker is not None or self._done:
            raise RuntimeError("AppWorldEnv is single-use: reset() once per env")
        for attempt in (0, 1):
            worker = self.pool.acquire()
            try:
                opened = worker.request(
                    "open",
                    self.limits.open_timeout_s,
                    task_id=self.task.task_id,
                    experiment_name=f"sgcd-w{worker.pid}",
                    timeout_seconds=int(self.limits.appworld_timeout_s),
                )
                break
            except WorkerDied:
                self.pool.discard(worker)
                if attempt:
                    raise
            except WorkerError as exc:
                self.pool.release(worker)
                raise RuntimeError(f"AppWorld could not open task {self.task.task_id}: {exc}") from exc
        self._worker = worker
        system = Message(role="system", content=render_system_prompt(opened, self.limits.mode))
        user = Message(role="user", content=f"Task: {opened['instruction']}")
        self._messages = [system, user]
        return Observation(messages=(system, user), tools=self.tools)

    def step(self, assistant_text: str) -> StepResult:
        if self._worker is None and not self._done:
            raise RuntimeError("call reset() before step()")
        if self._done:
            return StepResult(messages=(), done=True, reward=0.0, info={"error": "episode already finished"})
        self._messages.append(Message(role="assistant", content=assistant_text))
        turn, self._turn = self._turn, self._turn + 1
        try:
            if self.limits.mode == "function":
                replies, calls, completed = self._act_functions(assistant_text)
            else:
                replies, calls, completed = self._act_code(assistant_text)
        except WorkerDied as exc:
            return self._fail(turn, assistant_text, exc)
        observation = "\n".join(m.content for m in replies)
        self._steps.append(
            Step(
                turn=turn,
                text=assistant_text,
                calls=tuple(calls),
                observation=observation,
                error=any(c.error for c in calls) or not calls,
            )
        )
        self._messages += replies
        if completed or self._turn >= self.limits.max_turns:
            reason = "task completed" if completed else f"max_turns ({self.limits.max_turns}) reached"
            try:
                return self._finish(reason)
            except WorkerDied as exc:
                return self._fail(turn, None, exc)
        return StepResult(messages=tuple(replies), done=False, info={"step": self._steps[-1]})

    def _execute(self, code: str) -> tuple[str, dict[str, Any]]:
        reply = self._worker.request("execute", self.limits.action_timeout_s, code=code)
        return clip(reply["output"].rstrip("\n"), self.limits.max_output_chars), reply

    def _act_code(self, text: str) -> tuple[list[Message], list[CallRecord], bool]:
        code = extract_code(text)
        if code is None:
            note = "No code block found. Reply with your code inside ```python ... ```."
            return [Message(role="user", content=note)], [], False
        output, reply = self._execute(code)
        writes = any(c["method"].lower() != "get" for c in reply["api_calls"])
        record = CallRecord(
            name="python",
            arguments={"code": code},
            output=output,
            error=output.startswith("Execution failed"),
            is_write=writes,
        )
        return [Message(role="user", content=f"Output:\n```\n{output}\n```")], [record], reply["completed"]

    def _act_functions(self, text: str) -> tuple[list[Message], list[CallRecord], bool]:
        from sgcd.envs.toolcalls import parse_tool_calls

        calls, errors = parse_tool_calls(text)
        replies = [Message(role="tool", content=f"Error: {e}", name="error") for e in errors]
        records, completed, known = [], False, {t["function"]["name"] for t in self.tools}
        for call in calls:
            code = call_to_code(call.name, call.arguments)
            if code is None or (known and call.name not in known):
                output, reply = f"Error: unknown tool {call.name!r}", {"completed": False, "api_calls": []}
            else:
                output, reply = self._execute(code)
            writes = any(c["method"].lower() != "get" for c in reply["api_calls"])
            err = output.startswith(("Execution failed", "Error:"))
            records.append(CallRecord(call.name, dict(call.arguments), output, err, writes))
            replies.append(Message(role="tool", content=output, name=call.name))
            completed = completed or reply["completed"]
        if not calls and not errors:
            replies.append(
                Message(role="user", content="No tool call found. Call a tool, or finish the task.")
            )
        return replies, records, completed

    def _finish(self, reason: str) -> StepResult:
        ev = self._worker.request("evaluate", self.limits.open_timeout_s)
        self._release()
        num = max(int(ev["num_tests"]), 1)
        info = {
            "success": bool(ev["success"]),
            "pass_count": int(ev["pass_count"]),
            "fail_count": int(ev["fail_count"]),
            "num_tests": int(ev["num_tests"]),
            "pass_fraction": int(ev["pass_count"]) / num,
            "failures": ev["failures"],
            "answer": ev.get("answer"),
            "reason": reason,
        }
        info["reward_breakdown"] = {"pass_fraction": info["pass_fraction"]}
        return self._end(1.0 if ev["success"] else 0.0, info)

    def _fail(self, turn: int, text: str | None, exc: WorkerDied) -> StepResult:
        """A hung or crashed worker: replace it, end the episode as failed with the reason."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self.pool.discard(worker)
        if text is not None:
            self._steps.append(Step(turn=turn, text=text, observation=exc.reason, error=True))
        info = {"success": False, "pass_count": 0, "fail_count": 0, "num_tests": 0, "pass_fraction": 0.0}
        info.update(failure=exc.reason, timed_out=exc.timed_out, reason=f"worker failure: {exc.reason}")
        return self._end(0.0, info)

    def _end(self, reward: float, info: dict[str, Any]) -> StepResult:
        self._done = True
        episode = Episode(
            task_id=self.task.task_id,
            messages=tuple(self._messages),
            steps=tuple(self._steps),
            reward=reward,
            success=reward >= 1.0,
            info=dict(info),
        )
        info = {**info, "episode": episode}
        if self._steps:
            info["step"] = self._steps[-1]
        self._final = StepResult(messages=(), done=True, reward=reward, info=info)
        return self._final

    def _release(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            worker.request("close", self.limits.open_timeout_s)
            self.pool.release(worker)
        except (WorkerDied, WorkerError):
            self.pool.discard(worker)

    def __del__(self) -> None:
        # an env dropped mid-episode (a runner error) must not keep its worker busy forever
        worker, self._worker = getattr(self, "_worker", None), None
        if worker is not None:
            try:
                self.pool.discard(worker)
            except Exception:  # interpreter shutdown: the pool's atexit close handles the rest
                pass

    def episode(self) -> Episode:
        """The episode so far (the rollout loop asks when it truncates): frees the worker without evaluating."""
        if self._final is not None:
            return self._final.info["episode"]
        self._release()
        self._done = True
        return Episode(
            self.task.task_id, tuple(self._messages), tuple(self._steps), 0.0, False, {"reason": "cut"}
        )

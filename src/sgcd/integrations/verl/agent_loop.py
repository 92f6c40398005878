"""`sgcd_agent`: a verl agent loop that plays one episode of an `sgcd.envs` domain through verl's LLM server.

Each dataset row names its task in `extra_info` (`sgcd_env`, `sgcd_split`, `sgcd_task_id`; see
`sgcd.integrations.verl.data`). The loop resets a fresh single-use env, then alternates: sample one assistant turn
from the rollout server on the full token context, hand its text to the env, append the env's answer. The tokens
are recorded by `sgcd.rollout.record.EpisodeRecorder` (the reference trainer's recorder), so

    response_ids  = [turn 0][obs 0][turn 1][obs 1]...[last turn]   (everything after the clean prompt)
    response_mask = [1 ... 1][0 ..0][1 ... 1][0 ..0]...[1 ... 1]    1 exactly on tokens the server sampled

and `reward_score` is the domain verifier's reward (verl puts it on the last response token as `rm_scores`, so no
reward function is needed). The text-level episode, the clean prompt, the task instruction and the turn ids travel in
`extra_fields["sgcd"]` (JSON), which the SGCD trainer reads to build the credit reference.

Domain options (a tau3-airline user simulator, an AppWorld root) come from the config's `sgcd.env_options`.
Limits: `actor_rollout_ref.rollout.multi_turn.max_assistant_turns` (0/None: RolloutLimits().max_turns, 10) and the response budget
`rollout.response_length`, cut exactly like `sgcd.rollout.loop` (a turn overrunning the budget is cut and not
sent to the env). Departure from verl's `tool_agent_loop`: tool calls are parsed and executed by our env
(`<tool_call>` JSON, `sgcd.envs.toolcalls`), not by verl's tool registry, and the template deltas come from
`sgcd.policy.chat`. Env calls (`reset`, `step`) run in a worker thread so a slow env never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from sgcd.integrations.verl import AGENT_NAME
from sgcd.integrations.verl.codec import TokenizerCodec
from sgcd.integrations.verl.credit import episode_record
from sgcd.policy.base import Completion
from sgcd.rollout.loop import RolloutLimits, _check_budget, _take_turn
from sgcd.rollout.record import EpisodeRecorder
from sgcd.types import Trajectory

DEFAULT_MAX_TURNS = RolloutLimits().max_turns  # the run config's sampling.max_turns default
_DOMAINS: dict[str, Any] = {}
_TASKS: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()


def find_task(
    env_name: str, split: str, task_id: str, options: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """(domain, task) for a dataset row; domains and their task lists are built once per process.

    options: the domain's factory options (config `sgcd.env_options`), the same for every row of a run.
    """
    from sgcd.envs.base import get_domain

    with _LOCK:
        if env_name not in _DOMAINS:
            _DOMAINS[env_name] = get_domain(env_name, **dict(options or {}))
        domain = _DOMAINS[env_name]
        if (env_name, split) not in _TASKS:
            _TASKS[(env_name, split)] = {t.task_id: t for t in domain.tasks(split)}
    tasks = _TASKS[(env_name, split)]
    if task_id not in tasks:
        raise ValueError(f"sgcd_agent: task {task_id!r} not in {env_name}/{split} ({len(tasks)} tasks)")
    return domain, tasks[task_id]


def row_task(extra_info: dict[str, Any] | None) -> tuple[str, str, str]:
    """(env, split, task_id) from a row's extra_info; a missing key is a clear error naming it."""
    info = dict(extra_info or {})
    missing = [k for k in ("sgcd_env", "sgcd_split", "sgcd_task_id") if not info.get(k)]
    if missing:
        raise ValueError(
            f"sgcd_agent: dataset row extra_info lacks {missing}; write the data with "
            "`python -m sgcd.integrations.verl.data` (got keys: " + ", ".join(sorted(info)) + ")"
        )
    return str(info["sgcd_env"]), str(info["sgcd_split"]), str(info["sgcd_task_id"])


def trajectory_output(
    traj: Trajectory, opening: Any, metrics: dict[str, float], instruction: str = ""
) -> AgentLoopOutput:
    """A recorded trajectory as verl's AgentLoopOutput (+ the text-level record for the credit reference).

    instruction: the task as the agent was given it; the summarizer and the leakage guard read it, as in the
    reference trainer's groups."""
    record = episode_record(traj, opening, instruction)
    sampled = any(traj.action_mask)
    return AgentLoopOutput(
        prompt_ids=list(traj.prompt_ids),
        response_ids=list(traj.token_ids),
        response_mask=list(traj.action_mask),
        response_logprobs=list(traj.logprobs) if sampled else None,
        reward_score=float(traj.reward),
        num_turns=1 + 2 * sum(1 for s in traj.episode.steps),
        metrics=AgentLoopMetrics(**metrics),
        extra_fields={"sgcd": json.dumps(record, default=repr), "sgcd_success": bool(traj.success)},
    )


@register(AGENT_NAME)
class SGCDAgentLoop(AgentLoopBase):
    """verl agent loop over an sgcd environment (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.codec = TokenizerCodec(self.tokenizer)
        multi_turn = self.rollout_config.get("multi_turn", {}) or {}
        max_turns = multi_turn.get("max_assistant_turns") or DEFAULT_MAX_TURNS
        sgcd_block = self.config.get("sgcd", None) or {}
        self.env_options = dict(sgcd_block.get("env_options", None) or {})
        self.limits = RolloutLimits(
            max_turns=int(max_turns), max_tokens=int(self.rollout_config.response_length)
        )

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        env_name, split, task_id = row_task(kwargs.get("extra_info"))
        loop = asyncio.get_running_loop()
        domain, task = await loop.run_in_executor(None, find_task, env_name, split, task_id, self.env_options)
        env = domain.make_env(task)
        rec = await loop.run_in_executor(None, EpisodeRecorder.start, self.codec, env)
        request_id = uuid4().hex
        gen_s = env_s = 0.0
        while not _check_budget(rec, self.limits):
            budget = self.limits.max_tokens - len(rec.token_ids)
            params = {
                **sampling_params,
                "max_tokens": max(1, min(budget, sampling_params.get("max_tokens", budget))),
            }
            t0 = loop.time()
            out = await self.server_manager.generate(
                request_id=request_id, prompt_ids=rec.context, sampling_params=params
            )
            t1 = loop.time()
            completion = self._completion(out)
            step = functools.partial(_take_turn, self.codec, rec, completion, budget, self.limits)
            await loop.run_in_executor(None, step)
            gen_s, env_s = gen_s + (t1 - t0), env_s + (loop.time() - t1)
        traj = rec.trajectory()
        metrics = {"generate_sequences": gen_s, "tool_calls": env_s}
        return trajectory_output(traj, rec.opening, metrics, getattr(task, "instruction", ""))

    def _completion(self, out: Any) -> Completion:
        ids = [int(i) for i in out.token_ids]
        lps = [float(x) for x in out.log_probs] if out.log_probs else [0.0] * len(ids)
        finished = bool(ids) and ids[-1] == self.codec.eot_id
        return Completion(tuple(ids), tuple(lps), self.codec.decode(ids), finished)

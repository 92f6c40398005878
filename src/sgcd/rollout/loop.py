"""The agent loop: a policy samples assistant turns, single-use environments answer, tokens are recorded as we go.

`run_episode` is the whole idea on one screen. `run_batch` is the same loop advancing many episodes together:
each round samples the next turn of every unfinished episode in one batched `generate` call (siblings of one
task and different tasks alike), then steps each env. `run_group` / `run_groups` wrap it into TrajectoryGroups.

Continuous batching (`RolloutLimits.pause_share`, policies whose generate takes `pause_below`): a round does not
wait for its longest turn. Once fewer than that share of its rows are still sampling, generate hands the rest
back unfinished (`paused`); the finished rows' environments answer, and the next round samples their next turns
side by side with the paused rows' continuations (which cost one token's prefill: their keys/values are kept).
Tokens and log-probs are those of one uninterrupted turn (tested against the round-by-round loop).

Limits (RolloutLimits) are ours, on top of whatever the environment enforces: at most `max_turns` assistant
turns and `max_tokens` trajectory tokens (after the prompt). Hitting either ends the episode with
`truncated=True`, `success=False` and the env's reward so far (0 for an unfinished episode). A turn that
overruns the token budget is cut at the budget and not sent to the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sgcd.policy.base import Completion, SamplingParams
from sgcd.rollout.record import EpisodeRecorder
from sgcd.types import Observation, Trajectory, TrajectoryGroup


@dataclass(frozen=True)
class RolloutLimits:
    max_turns: int = 10  # assistant turns per episode (= the run config's sampling.max_turns, which reads it)
    max_tokens: int = 768  # trajectory tokens per episode, after the prompt (= sampling.max_tokens)
    batch_size: int = 64  # most episodes sampled in one generate() call
    # continuous batching: a round hands back its unfinished turns once fewer than this share of its rows are
    # still sampling (0 = off: every round waits for its longest turn)
    pause_share: float = 0.0


def run_episode(policy: Any, env: Any, params: SamplingParams, limits: RolloutLimits = RolloutLimits()):
    """One episode, one turn at a time: the reference the batched loop must match."""
    rec = EpisodeRecorder.start(policy, env)
    while not _check_budget(rec, limits):
        budget = limits.max_tokens - len(rec.token_ids)
        completion = policy.generate([rec.context], _capped(params, budget))[0]
        _take_turn(policy, rec, completion, budget, limits)
    return rec.trajectory()


def run_batch(
    policy: Any,
    envs: Sequence[Any],
    params: SamplingParams,
    limits: RolloutLimits = RolloutLimits(),
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Trajectory]:
    """Run fresh single-use envs to the end together; trajectories in the order of `envs`.

    At most `limits.batch_size` episodes are in flight; when one ends, the next env starts in its slot, so a few
    long episodes never leave the batch nearly empty. on_done(i, recorder) is called as episode i ends."""
    return [rec.trajectory() for rec in _run_recorders(policy, envs, params, limits, on_done)]


def _run_recorders(policy, envs, params, limits, on_done=None) -> list[EpisodeRecorder]:
    recs: list[EpisodeRecorder | None] = [None] * len(envs)
    waiting, live = list(range(len(envs))), []
    paused: dict[int, Completion] = {}  # the part of a turn sampled so far, for turns a round handed back
    while waiting or live:
        while waiting and len(live) < limits.batch_size:  # start the next envs (reset) as slots free up
            i = waiting.pop(0)
            recs[i] = EpisodeRecorder.start(policy, envs[i])
            live.append(i)
        chunk = [recs[i] for i in live]
        budgets = [limits.max_tokens - len(r.token_ids) for r in chunk]
        sofar = [paused[i].token_ids if i in paused else () for i in live]
        completions = _generate(policy, chunk, sofar, budgets, params, limits)
        for i, rec, completion, budget in zip(live, chunk, completions, budgets):
            if i in paused:
                completion = _join(policy, paused.pop(i), completion)
            if completion.paused:
                paused[i] = completion
            else:
                _take_turn(policy, rec, completion, budget, limits)
        for i in [i for i in live if i not in paused and _check_budget(recs[i], limits)]:
            live.remove(i)
            if hasattr(policy, "end_episode"):  # a policy that keeps per-episode state frees it
                policy.end_episode(recs[i].context)
            if on_done is not None:
                on_done(i, recs[i])
    return recs  # type: ignore[return-value]


def _generate(policy, recs, sofar, budgets, params, limits) -> list[Completion]:
    """The next turn (or the rest of a paused one) of each episode, in one generate call."""
    caps = [max(1, min(params.max_new_tokens, b) - len(s)) for b, s in zip(budgets, sofar)]
    prompts = [r.context + list(s) for r, s in zip(recs, sofar)]
    if limits.pause_share > 0 and getattr(policy, "can_pause", False):  # (only this branch ever pauses)
        pause_below = int(limits.pause_share * len(recs))  # 0 for a lone row: it runs to the end of its turn
        return policy.generate(prompts, params, max_new=caps, pause_below=pause_below)
    return policy.generate(prompts, _capped(params, max(caps)))


def _join(policy, head: Completion, tail: Completion) -> Completion:
    """A paused turn's first part and its continuation as one turn."""
    toks, finished = head.token_ids + tail.token_ids, tail.finished
    text = "" if tail.paused else policy.decode(list(toks[:-1] if finished else toks))
    return Completion(toks, head.logprobs + tail.logprobs, text, finished, tail.paused)


def _check_budget(rec: EpisodeRecorder, limits: RolloutLimits) -> bool:
    """True when the episode is over (an environment's answer may have used up the token budget)."""
    if not rec.done and len(rec.token_ids) >= limits.max_tokens:
        rec.stop(f"max_tokens ({limits.max_tokens}) reached")
    return rec.done


def _take_turn(
    policy, rec: EpisodeRecorder, completion: Completion, budget: int, limits: RolloutLimits
) -> None:
    if len(completion.token_ids) > budget or (
        len(completion.token_ids) == budget and not completion.finished
    ):
        cut = completion.token_ids[:budget]
        rec.add_turn(policy, Completion(cut, completion.logprobs[:budget], policy.decode(cut), False))
        rec.stop(f"max_tokens ({limits.max_tokens}) reached")
        return
    rec.add_turn(policy, completion)
    rec.step_env(policy, completion, limits.max_turns)


def _capped(params: SamplingParams, budget: int) -> SamplingParams:
    return replace(params, max_new_tokens=max(1, min(params.max_new_tokens, budget)))


def make_group(
    trajectories: Sequence[Trajectory], prompt: Observation, instruction: str = ""
) -> TrajectoryGroup:
    """The G siblings of one task as a TrajectoryGroup (group_id = sibling index)."""
    trajs = tuple(replace(t, group_id=i) for i, t in enumerate(trajectories))
    task_ids = {t.task_id for t in trajs}
    if len(task_ids) > 1:
        raise ValueError(f"make_group: siblings must share one task, got {sorted(task_ids)}")
    return TrajectoryGroup(
        task_id=trajs[0].task_id if trajs else "", trajectories=trajs, prompt=prompt, instruction=instruction
    )


def run_groups(
    policy: Any,
    env_factory: Callable[[Any], Any],
    tasks: Sequence[Any],
    G: int,
    params: SamplingParams,
    limits: RolloutLimits = RolloutLimits(),
) -> list[TrajectoryGroup]:
    """G siblings for each task, all advanced together; one TrajectoryGroup per task, in task order."""
    envs = [env_factory(task) for task in tasks for _ in range(G)]
    recs = _run_recorders(policy, envs, params, limits)
    groups = []
    for k, task in enumerate(tasks):
        sib = recs[k * G : (k + 1) * G]
        trajs = [rec.trajectory() for rec in sib]
        groups.append(make_group(trajs, sib[0].opening, getattr(task, "instruction", "")))
    return groups


def run_group(
    policy: Any,
    env_factory: Callable[[Any], Any],
    task: Any,
    G: int,
    params: SamplingParams,
    limits: RolloutLimits = RolloutLimits(),
) -> TrajectoryGroup:
    """G sibling rollouts of one task, sampled together on the same clean prompt."""
    return run_groups(policy, env_factory, [task], G, params, limits)[0]

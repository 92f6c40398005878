"""The reference-reading warm start (`model.sft_reference`): SFT examples whose system message carries a credit
reference, so the teacher learns to *use* one. Our addition; the paper's teacher is a 4B instruction model that
reads the reference unaided, and SmolLM2-135M does not (docs/training.md, "Reference-reading warm start").

For a training task with a gold solution, a *scripted sibling group* is played through the real environment:

- the success: the gold turns (`domain.gold_turns(task)`), exactly the clean SFT example;
- failed siblings, scripted perturbations of the gold built from the domain's generic hooks only
  (`gold_turns`, `is_write_tool`, the tool schemas of the opening prompt):
    wrong_write      the first write call with one argument changed (`sgcd.envs.scripted.perturb_turn`)
    no_write         the gold without its write calls, so it ends with a reply and no state change
    forbidden_write  (gold makes no write) a write whose required arguments all appear, by name, in the gold's
                     own calls, made before the final answer: e.g. cancelling the reservation a refusal protects
    premature_answer a vague reply before any tool call
  each is kept only if the environment's own verifier fails it (a perturbation the verifier accepts, such as a
  skipped lookup in a scripted replay that already knows the ids, is not a failure and is dropped).

The group goes through the trainer's own code path: `make_group`, the offline summarizer
(`make_summarizer("offline").summarize`, leakage guard included) and `teacher_prefixes`, so the system message is
byte for byte what the RL teacher sees. Examples:

- *follow*: the teacher prefix, then the success's recorded tokens (targets = its action tokens). Whenever the
  reference marks a step harmful, the target is a trajectory that does not take it.
- *recover* (contrastive): when the wrong write returned an error (the state did not change), the episode
  gold[:k] + [wrong call] + gold[k:] is played; if the verifier passes it, the example carries the same
  reference, the wrong call sits in the context with mask 0 (never a target), and the targets are the gold turns
  that follow: the reference blames the erroring step, and the target moves past it.

Clean-prompt examples stay as they are; `SFTConfig.reference_share` sets the share of the optimizer steps that
train on a batch of these examples instead (`sgcd.trainer.sft.reference_steps`; a batch is all-clean or
all-reference, so each keeps its own shared prefix cache). Everything is deterministic in (task id, seed).
Bump REFERENCE_VERSION when the examples change: it is part of the warm-start cache key when references are on.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from sgcd.trainer.gold import scripted_trajectory
from sgcd.types import Trajectory, TrajectoryGroup

REFERENCE_VERSION = "1"
FAILURE_KINDS = ("wrong_write", "no_write", "forbidden_write", "premature_answer")
VAGUE_ANSWER = "I have taken care of your request."


@dataclass
class ReferenceExamples:
    """Reference-carrying SFT examples, the groups they came from, and counts for sft.json.

    sources[i] = (index into groups / references, "follow" | "recover") of examples[i]; failure_kinds[j] = the
    kinds of groups[j]'s failed siblings, in sibling order (the success is sibling 0)."""

    examples: list[Trajectory] = field(default_factory=list)
    sources: list[tuple[int, str]] = field(default_factory=list)
    groups: list[TrajectoryGroup] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    failure_kinds: list[tuple[str, ...]] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)


def _calls(turn: str) -> list[Any]:
    from sgcd.envs.toolcalls import parse_tool_calls

    return parse_tool_calls(turn)[0]


def _write_turn_index(turns: list[str], is_write: Any) -> int | None:
    for k, turn in enumerate(turns[:-1]):
        if any(is_write(c.name) for c in _calls(turn)):
            return k
    return None


def _forbidden_write(turns: list[str], tools: Any, is_write: Any, rng: random.Random) -> str | None:
    """A write call the gold does not make, with every required argument filled from the gold's own calls."""
    from sgcd.envs.toolcalls import format_tool_call

    seen: dict[str, Any] = {}
    for turn in turns[:-1]:
        for call in _calls(turn):
            for key, value in call.arguments.items():
                seen.setdefault(key, value)
    made = {c.name for turn in turns for c in _calls(turn)}
    options = []
    for schema in tools:
        fn = schema.get("function", schema)
        name, params = fn.get("name"), fn.get("parameters") or {}
        required = list(params.get("required") or params.get("properties") or [])
        if name and is_write(name) and name not in made and required and all(r in seen for r in required):
            options.append(format_tool_call(name, {r: seen[r] for r in required}))
    return rng.choice(options) if options else None


def failure_scripts(domain: Any, task: Any, tools: Any, rng: random.Random) -> dict[str, list[str]]:
    """kind -> the failed sibling's assistant turns, for every kind that applies to this task's gold."""
    from sgcd.envs.scripted import perturb_turn, read_only_script

    turns = list(domain.gold_turns(task))
    is_write = domain.is_write_tool
    out: dict[str, list[str]] = {}
    k = _write_turn_index(turns, is_write)
    if k is not None:
        out["wrong_write"] = turns[:k] + [perturb_turn(turns[k], rng)] + turns[k + 1 :]
        out["no_write"] = read_only_script(turns, is_write)
    else:
        bad = _forbidden_write(turns, tools, is_write, rng)
        if bad is not None:
            out["forbidden_write"] = turns[:-1] + [bad, turns[-1]]
    if len(turns) > 1:
        out["premature_answer"] = [VAGUE_ANSWER]
    return out


def _task_rng(task: Any, seed: int) -> random.Random:
    blob = f"sft-reference:{seed}:{task.task_id}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(blob).digest()[:8], "big"))


def sibling_group(
    policy: Any, domain: Any, task: Any, seed: int = 0, max_failures: int = 3
) -> tuple[TrajectoryGroup | None, dict[str, Trajectory]]:
    """(the scripted sibling group: gold first, then 1..max_failures verified failures, or None when the gold
    fails or no perturbation fails; kind -> failed trajectory for the kinds in the group)."""
    from sgcd.rollout.loop import make_group

    gold = scripted_trajectory(policy, domain, task, list(domain.gold_turns(task)))
    if not gold.success:
        return None, {}
    opening = domain.make_env(task).reset()
    rng = _task_rng(task, seed)
    scripts = failure_scripts(domain, task, opening.tools, rng)
    failed = {}
    for kind, turns in scripts.items():
        traj = scripted_trajectory(policy, domain, task, turns)
        if not traj.success:
            failed[kind] = traj
    if not failed:
        return None, {}
    kinds = sorted(failed, key=FAILURE_KINDS.index)
    rng.shuffle(kinds)
    kinds = sorted(kinds[: rng.randint(1, min(max_failures, len(kinds)))], key=FAILURE_KINDS.index)
    chosen = {k: failed[k] for k in kinds}
    group = make_group([gold, *chosen.values()], opening, getattr(task, "instruction", ""))
    return group, chosen


def _recovery(policy: Any, domain: Any, task: Any, wrong: Trajectory) -> Trajectory | None:
    """gold[:k] + [the erroring wrong call] + gold[k:], if the verifier passes it; the wrong turn masked out."""
    turns = list(domain.gold_turns(task))
    k = _write_turn_index(turns, domain.is_write_tool)
    step = next((s for s in wrong.episode.steps if s.turn == k), None)
    if k is None or step is None or not step.calls or not all(c.error for c in step.calls):
        return None
    traj = scripted_trajectory(policy, domain, task, turns[:k] + [step.text] + turns[k:])
    if not traj.success:
        return None
    mask = tuple(0 if t == k else m for m, t in zip(traj.action_mask, traj.turn_ids))
    return replace(traj, action_mask=mask)


def reference_examples(
    policy: Any, domain: Any, tasks: list[Any], max_tokens: int = 4096, seed: int = 0
) -> ReferenceExamples:
    """Follow (and, where honest, recover) examples with the RL teacher's prefix, for each usable task."""
    from sgcd.credit_reference import make_summarizer, teacher_prefixes

    summarizer = make_summarizer("offline")
    out = ReferenceExamples()
    for task in tasks:
        group, failed = sibling_group(policy, domain, task, seed)
        if group is None:
            out.stats["tasks_without_group"] += 1
            continue
        ref = summarizer.summarize(group)
        prefix = tuple(teacher_prefixes(policy, group, ref))
        out.groups.append(group)
        out.references.append(ref)
        out.failure_kinds.append(tuple(failed))
        for kind in failed:
            out.stats[f"failures/{kind}"] += 1
        harmful = ref.polarity_counts()["harmful"] > 0
        candidates = [("follow", group.trajectories[0])]
        if "wrong_write" in failed and (rec := _recovery(policy, domain, task, failed["wrong_write"])):
            candidates.append(("recover", rec))
        for kind, traj in candidates:
            if len(traj.token_ids) > max_tokens:
                out.stats["too_long"] += 1
                continue
            out.examples.append(replace(traj, prompt_ids=prefix))
            out.sources.append((len(out.groups) - 1, kind))
            out.stats[kind] += 1
            out.stats[f"{kind}_past_harmful"] += harmful
    return out

"""Teacher context: rendering, the system message, prefixes/offsets, and teacher=none == student bit for bit."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch
from cref_groups import as_group, cancel_episodes, cancel_group

from sgcd.credit_reference import (
    make_summarizer,
    render_reference,
    teacher_inputs,
    teacher_messages,
    teacher_prefixes,
    teacher_scores,
)
from sgcd.credit_reference.teacher import HEADER
from sgcd.policy.base import ScoreOutput, TokenPolicy
from sgcd.types import Message


class FakePolicy:
    """Bytes as tokens; log p(token) depends on the prefix, so a different prefix gives different scores."""

    tokenizer = None

    def __init__(self) -> None:
        self.calls: list[tuple[list[list[int]], list[list[int]]]] = []

    def encode_prompt(self, messages, tools):
        return list(json.dumps([m.to_openai() for m in messages] + list(tools)).encode())

    def encode_delta(self, messages):
        return []

    def generate(self, prompts, params):
        raise NotImplementedError

    def score(self, prefixes, continuations, *, topk=0, with_entropy=False, grad=False):
        self.calls.append((prefixes, continuations))
        T = max(len(c) for c in continuations)
        lp = torch.zeros(len(prefixes), T)
        mask = torch.zeros(len(prefixes), T, dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prefixes, continuations)):
            for t, tok in enumerate(c):
                lp[b, t] = -((sum(p) + 7 * t + tok) % 97) / 10.0
                mask[b, t] = True
        return ScoreOutput(logprobs=lp, mask=mask)


def _ref():
    return make_summarizer("offline").summarize(cancel_group())


def test_render_one_line_per_step():
    ref = _ref()
    text = render_reference(ref)
    lines = text.splitlines()
    assert lines[0] == f"{HEADER}:"
    step_lines = [ln for ln in lines if re.match(r"S\d+ \[", ln)]
    assert len(step_lines) == len(ref.steps) == 5
    assert step_lines[1].startswith(
        "S2 [helpful, confidence 1.00; successes 2/2, failures 0/3] cancel_reservation"
    )


def test_teacher_messages_append_to_system_or_insert_one():
    ref, g = _ref(), cancel_group()
    clean = list(g.prompt.messages)
    assert teacher_messages(clean, None) == clean  # teacher=none: the clean prompt, unchanged
    msgs = teacher_messages(clean, ref)
    assert msgs[0].content == clean[0].content + "\n\n" + render_reference(ref)
    assert msgs[1:] == clean[1:] and clean[0].content == "You are an airline agent."  # input not mutated
    no_sys = [Message("user", "hi")]
    assert teacher_messages(no_sys, ref) == [Message("system", render_reference(ref)), Message("user", "hi")]


def _fake_group(policy):
    g = cancel_group()
    prompt_ids = tuple(policy.encode_prompt(g.prompt.messages, g.prompt.tools))
    return as_group(
        cancel_episodes(), token_ids=[[5, 6, 7], [8, 9], [1], [2, 3, 4, 5], [6]], prompt_ids=prompt_ids
    )


def test_prefixes_offsets_and_identical_continuations():
    policy = FakePolicy()
    assert isinstance(policy, TokenPolicy)
    g, ref = _fake_group(policy), _ref()
    prefix = teacher_prefixes(policy, g, ref)
    assert prefix == policy.encode_prompt(teacher_messages(g.prompt.messages, ref), g.prompt.tools)
    inp = teacher_inputs(policy, g, ref)
    assert inp.prefixes == [prefix] * 5
    assert inp.continuations == [list(t.token_ids) for t in g.trajectories]
    assert inp.offsets == [len(prefix) - len(g.trajectories[0].prompt_ids)] * 5
    # the fake tokenizer is json.dumps bytes: the block adds its bytes, and every newline is escaped to 2 bytes
    block = "\n\n" + render_reference(ref)
    assert block.isascii() and '"' not in block
    assert inp.offsets[0] == len(block.encode()) + block.count("\n")
    none = teacher_inputs(policy, g, None)
    assert none.prefixes == [list(t.prompt_ids) for t in g.trajectories] and none.offsets == [0] * 5
    with pytest.raises(ValueError, match="prompt="):
        teacher_inputs(policy, list(g.trajectories), ref)


def test_teacher_scores_align_to_token_ids():
    policy = FakePolicy()
    g = _fake_group(policy)
    out = teacher_scores(policy, g, _ref())
    assert out.logprobs.shape == (5, 4)
    assert out.mask.sum(1).tolist() == [3, 2, 1, 4, 1]
    student = policy.score(
        [list(t.prompt_ids) for t in g.trajectories], [list(t.token_ids) for t in g.trajectories]
    )
    assert not torch.equal(out.logprobs, student.logprobs)  # the reference changes the prefix, so the scores
    assert torch.equal(teacher_scores(policy, g, None).logprobs, student.logprobs)


@pytest.fixture(scope="module")
def tiny():
    from sgcd.policy.models import load_policy

    return load_policy("tiny", seed=0)


def test_teacher_none_equals_student_bit_for_bit_on_the_tiny_model(tiny):
    from sgcd.core.credit import credit_weights
    from sgcd.policy.base import SamplingParams

    g = cancel_group()
    prompt_ids = tiny.encode_prompt(g.prompt.messages, g.prompt.tools)
    comps = tiny.generate([prompt_ids] * 5, SamplingParams(temperature=1.0, max_new_tokens=12))
    group = as_group(
        cancel_episodes(), token_ids=[list(c.token_ids) for c in comps], prompt_ids=tuple(prompt_ids)
    )
    trajs = group.trajectories
    # the student: pi_old on the clean prompt, as the trainer computes it for PPO
    student = tiny.score([list(t.prompt_ids) for t in trajs], [list(t.token_ids) for t in trajs])
    teacher = teacher_scores(tiny, group, None)
    assert torch.equal(teacher.logprobs, student.logprobs) and torch.equal(teacher.mask, student.mask)
    assert teacher_prefixes(tiny, group, None) == list(prompt_ids)  # re-encoding the clean prompt agrees too
    adv_B = torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0])
    w_B_T, _ = credit_weights(teacher.logprobs, student.logprobs, adv_B, student.mask)
    assert torch.equal(w_B_T[student.mask], torch.ones(int(student.mask.sum())))  # SGCD == GRPO exactly
    # with a reference the prefix is longer and the log-probs move, on the same tokens
    with_ref = teacher_scores(tiny, group, _ref())
    assert with_ref.logprobs.shape == student.logprobs.shape and torch.equal(with_ref.mask, student.mask)
    assert not torch.equal(with_ref.logprobs, student.logprobs)


def test_bare_trajectory_list_with_prompt(tiny):
    g = cancel_group()
    prompt_ids = tiny.encode_prompt(g.prompt.messages, g.prompt.tools)
    group = as_group(cancel_episodes()[:2], token_ids=[[10, 11], [12]], prompt_ids=tuple(prompt_ids))
    a = teacher_scores(tiny, group, _ref())
    b = teacher_scores(tiny, list(group.trajectories), _ref(), prompt=replace(g.prompt))
    assert torch.equal(a.logprobs, b.logprobs)

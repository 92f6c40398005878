"""Teacher alignment: the trajectory tokens are exactly what scoring sees after any prefix, and the recorded
context (prompt + deltas) is exactly what the chat template renders."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fakes import FakeEnv, fake_task

from sgcd.policy.base import Completion, SamplingParams
from sgcd.rollout import run_batch, run_group
from sgcd.types import Message

PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)


def _rollouts(policy, n=2, turns=3):
    envs = [FakeEnv(fake_task(i), always_continue=True, max_turns=turns) for i in range(n)]
    policy.seed(11)
    return run_batch(policy, envs, PARAMS)


def test_teacher_prefix_sees_the_stored_tokens_verbatim(tiny_policy):
    """Scoring under a different (teacher) prefix feeds exactly prefix + token_ids to the model; the stored
    sampling log-probs equal the student score over the whole multi-turn trajectory."""
    trajs = _rollouts(tiny_policy)
    assert all(t.turn_ids[-1] == 2 for t in trajs)  # three assistant turns with observations between them
    teacher = [
        tiny_policy.encode_prompt(
            (Message("system", "You are an agent.\n\nTraining-only credit reference: call lookup first."),)
            + t.episode.messages[1:2],
            [],
        )
        for t in trajs
    ]
    assert all(len(tp) != len(t.prompt_ids) for tp, t in zip(teacher, trajs))
    seen = []
    hook = tiny_policy.model.model.embed_tokens.register_forward_hook(
        lambda m, i, o: seen.append(i[0].clone())
    )
    try:
        t_out = tiny_policy.score(teacher, [list(t.token_ids) for t in trajs])
    finally:
        hook.remove()
    # One forward of the whole batch, or (shared-prefix cache) the shared prefix once, then the rows after it.
    prefix_ids = seen[0][0].tolist() if len(seen) == 2 else []
    rows = seen[-1]
    for b, (tp, t) in enumerate(zip(teacher, trajs)):
        full = prefix_ids + rows[b].tolist()
        assert full[: len(tp)] == tp
        after = full[len(tp) : len(tp) + len(t.token_ids)]
        assert after == list(t.token_ids)  # the teacher sees the stored ids, verbatim, right after its prefix
        assert t_out.mask[b].sum().item() == len(t.token_ids)
    s_out = tiny_policy.score([list(t.prompt_ids) for t in trajs], [list(t.token_ids) for t in trajs])
    worst = 0.0
    for b, t in enumerate(trajs):
        m = torch.tensor(t.action_mask, dtype=torch.bool)
        stored = torch.tensor(t.logprobs)[m]
        worst = max(worst, (s_out.logprobs[b, : len(m)][m] - stored).abs().max().item())
        assert not torch.allclose(t_out.logprobs[b, : len(m)][m], stored, atol=1e-3)  # the prefix matters
    print(f"multi-turn: max |stored sampling logprob - student score| = {worst:.2e}")
    assert worst < 1e-4


@dataclass
class TextScript:
    """Wraps a real policy; its turns are given texts, tokenized once (as if sampled), log-probs from score()."""

    policy: object
    texts: list[str]

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            text = self.texts.pop(0)
            ids = self.policy.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.policy.eot_id]
            lps = self.policy.score([p], [ids]).logprobs[0].tolist()
            out.append(Completion(tuple(ids), tuple(lps), text, True))
        return out


def test_recorded_context_is_the_chat_template_rendering(tiny_policy):
    """decode(prompt_ids + token_ids) equals the template's rendering of the whole conversation: the deltas
    reproduce the template exactly, so the model trains on the same context it will be deployed with."""
    texts = [
        '<tool_call>{"name": "lookup", "arguments": {}}</tool_call>',
        "still looking <tool_call>{}",
        "done!",
    ]
    policy = TextScript(tiny_policy, list(texts))
    group = run_group(policy, lambda task: FakeEnv(task), fake_task(), 1, PARAMS)
    t = group.trajectories[0]
    conversation = list(t.episode.messages)
    assert [m.role for m in conversation] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    from sgcd.policy.chat import to_template_messages

    dicts = to_template_messages(conversation, group.prompt.tools)
    rendered = tiny_policy.tokenizer.apply_chat_template(dicts, tokenize=False)
    recorded = tiny_policy.tokenizer.decode(list(t.prompt_ids) + list(t.token_ids))
    assert rendered == recorded + "\n"  # the template closes the last turn with a newline after <|im_end|>
    assert t.reward == 1.0 and group.prompt.tools and group.task_id == "t0"

"""The `sgcd_agent` loop on a scripted airline-lite episode: tokens, response_mask, reward, limits.

Task airline-lite/train/00014 (gold: 3 assistant turns). With g_k the tokens of gold turn k (its text + the
end-of-turn token, as the server returns them) and o_k the environment's answer to turn k rendered as the chat
template's delta (tool result + next assistant header), the expected layout is

    response_ids  = [ g_0 ][ o_0 ][ g_1 ][ o_1 ][ g_2 ]
    response_mask = [1...1][0..0][1...1][0..0][1...1]

(the last turn is the final answer: the episode ends, no delta follows). The expected ids below are built
independently of the loop: the gold texts tokenized directly, and the deltas from a second, fresh env stepped by
hand and rendered with `sgcd.policy.chat.render_delta`.
"""

from __future__ import annotations

import json

import pytest
from verl_helpers import TASK_INDEX, run_scripted

from sgcd.policy.chat import render_delta, render_prompt


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def expected_layout(tok, domain, task):
    """(prompt ids, response ids, mask) of the gold episode, built by hand."""
    eot = tok.convert_tokens_to_ids(tok.eos_token)
    env = domain.make_env(task)
    opening = env.reset()
    prompt = _ids(tok, render_prompt(tok, opening.messages, opening.tools))
    ids, mask = [], []
    for text in domain.gold_turns(task):
        turn = _ids(tok, text) + [eot]
        ids += turn
        mask += [1] * len(turn)
        result = env.step(text)
        if result.done:
            return prompt, ids, mask, result.reward
        delta = _ids(tok, render_delta(tok, result.messages))
        ids += delta
        mask += [0] * len(delta)
    raise AssertionError("gold script did not finish the episode")


def test_gold_episode_mask_ids_and_reward(tiny, domain):
    tok = tiny.tokenizer
    task = domain.tasks("train")[TASK_INDEX]
    out, server = run_scripted(tok, domain, task, "gold")
    prompt, ids, mask, reward = expected_layout(tok, domain, task)
    assert len(domain.gold_turns(task)) == 3 and reward == 1.0
    assert out.prompt_ids == prompt
    assert out.response_ids == ids
    assert out.response_mask == mask
    # three runs of 1s separated by two runs of 0s: 1..1 0..0 1..1 0..0 1..1
    runs = [mask[0]] + [b for a, b in zip(mask, mask[1:]) if a != b]
    assert runs == [1, 0, 1, 0, 1]
    assert out.reward_score == 1.0
    # the server saw the full context each turn: prompt + everything recorded before that turn
    starts = [0] + [i for i in range(1, len(mask)) if mask[i] == 1 and mask[i - 1] == 0]
    assert [len(p) for p in server.prompts] == [len(prompt) + s for s in starts]
    assert server.prompts[-1] == prompt + ids[: starts[-1]]
    # sampling log-probs on sampled tokens, 0 on environment tokens
    assert out.response_logprobs == [-0.5 if m else 0.0 for m in mask]
    record = json.loads(out.extra_fields["sgcd"])
    assert record["episode"]["success"] is True and len(record["episode"]["steps"]) == 3
    assert record["prompt"]["messages"][0]["role"] == "system"


def test_read_only_agent_fails_with_verifier_reward(tiny, domain):
    """read-only drops the cancel call: 2 turns (lookup, answer), mask 1..1 0..0 1..1, reward 0."""
    task = domain.tasks("train")[TASK_INDEX]
    out, _ = run_scripted(tiny.tokenizer, domain, task, "read-only")
    runs = [out.response_mask[0]] + [b for a, b in zip(out.response_mask, out.response_mask[1:]) if a != b]
    assert runs == [1, 0, 1]
    assert out.reward_score == 0.0
    assert json.loads(out.extra_fields["sgcd"])["episode"]["success"] is False


def test_turn_limit_truncates(tiny, domain):
    """max_assistant_turns=1: one sampled turn, nothing appended after it, reward 0 (unfinished episode)."""
    task = domain.tasks("train")[TASK_INDEX]
    out, server = run_scripted(tiny.tokenizer, domain, task, "gold", max_turns=1)
    assert len(server.prompts) == 1
    assert set(out.response_mask) == {1}
    assert out.reward_score == 0.0


def test_response_budget_cuts_the_turn(tiny, domain):
    """response_length=5: the first turn is cut at 5 tokens, never sent to the env; max_tokens asked = 5."""
    task = domain.tasks("train")[TASK_INDEX]
    out, server = run_scripted(tiny.tokenizer, domain, task, "gold", response_length=5)
    assert server.params[0]["max_tokens"] == 5
    assert out.response_mask == [1] * 5 and len(out.response_ids) == 5
    assert out.reward_score == 0.0


def test_row_without_task_is_a_clear_error(tiny, domain):
    from sgcd.integrations.verl.agent_loop import row_task

    with pytest.raises(ValueError, match="sgcd_task_id"):
        row_task({"sgcd_env": "airline-lite", "sgcd_split": "train"})

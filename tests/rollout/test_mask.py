"""The token layout a rollout records: exact action mask, turn ids, token types and log-probs."""

from __future__ import annotations

from fakes import EOT, FakeEnv, ScriptedPolicy, fake_task
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcd.policy.base import SamplingParams
from sgcd.rollout import RolloutLimits, run_batch, run_episode

PIECES = {
    EOT: "<|im_end|>",
    10: "<tool_call>",
    11: '{"name": "lookup"}',
    12: "</tool_call>",
    13: "think ",
    15: "all done",
    200: "\n<|im_start|>tool\nresult<|im_end|>",
    201: "\n<|im_start|>assistant\n",
}
PARAMS = SamplingParams(temperature=1.0, max_new_tokens=4)


def three_turn_script():
    return [((10, 11, 12, EOT), True), ((13, 10, 11), False), ((15, EOT), True)]


def test_three_turn_layout_exact():
    """Three assistant turns; the second is cut at max_new_tokens (no end-of-turn token sampled).

    prompt (P=3)   100 101 102                        encode_prompt: never part of token_ids
    turn 0         10  11  12  E      sampled: <tool_call>{...}</tool_call><|im_end|>
    obs 0          200 201            encode_delta(tool message): template glue + next header
    turn 1         13  10  11         sampled: "think <tool_call>{...}", cut, no E sampled
    obs 1          E   200 201        E appended as glue (mask 0), then the delta
    turn 2         15  E              sampled: "all done<|im_end|>"  -> final answer, reward 1

    index          0  1  2  3  4  5  6  7  8  9 10 11 12 13
    token_ids      10 11 12 E  200 201 13 10 11 E 200 201 15 E
    action_mask    1  1  1  1  0  0  1  1  1  0  0  0  1  1
    turn_ids       0  0  0  0 -1 -1  1  1  1 -1 -1 -1  2  2
    token_types    2  2  2  1  0  0  1  2  2  0  0  0  3  3   (E after </tool_call> = reasoning;
                                                               unclosed <tool_call> runs to the end)
    logprobs: the scripted -(k+1)/10 at sampled position k of its turn, 0.0 on observations.
    """
    policy = ScriptedPolicy(three_turn_script(), PIECES)
    env = FakeEnv(fake_task())
    traj = run_episode(policy, env, PARAMS)
    E = EOT
    assert traj.prompt_ids == (100, 101, 102)
    assert traj.token_ids == (10, 11, 12, E, 200, 201, 13, 10, 11, E, 200, 201, 15, E)
    assert traj.action_mask == (1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1)
    assert traj.turn_ids == (0, 0, 0, 0, -1, -1, 1, 1, 1, -1, -1, -1, 2, 2)
    assert traj.token_types == (2, 2, 2, 1, 0, 0, 1, 2, 2, 0, 0, 0, 3, 3)
    assert traj.logprobs == (-0.1, -0.2, -0.3, -0.4, 0.0, 0.0, -0.1, -0.2, -0.3, 0.0, 0.0, 0.0, -0.1, -0.2)
    # Each turn was sampled from exactly the recorded prefix: prompt + the tokens before it.
    assert policy.contexts == [
        [100, 101, 102],
        [100, 101, 102] + list(traj.token_ids[:6]),
        [100, 101, 102] + list(traj.token_ids[:12]),
    ]
    # The env saw the decoded text of each turn (end-of-turn token dropped).
    assert env.seen == [
        '<tool_call>{"name": "lookup"}</tool_call>',
        'think <tool_call>{"name": "lookup"}',
        "all done",
    ]
    assert traj.reward == 1.0 and traj.success and not traj.truncated
    assert [s.turn for s in traj.episode.steps] == [0, 1, 2] and traj.episode.steps[-1].final


def test_batched_equals_one_at_a_time():
    """run_batch over one env records the same trajectory as run_episode."""
    a = run_episode(ScriptedPolicy(three_turn_script(), PIECES), FakeEnv(fake_task()), PARAMS)
    b = run_batch(ScriptedPolicy(three_turn_script(), PIECES), [FakeEnv(fake_task())], PARAMS)[0]
    assert a == b


def test_token_budget_truncates_and_cuts_the_turn():
    """max_tokens=8: turn 0 (4) + obs (2) leave 2; turn 1 sampled 3 ids -> cut to 2, episode truncated.

    token_ids = 10 11 12 E 200 201 13 10 ; mask 1 1 1 1 0 0 1 1 ; the cut turn is never sent to the env.
    """
    env = FakeEnv(fake_task())
    traj = run_episode(ScriptedPolicy(three_turn_script(), PIECES), env, PARAMS, RolloutLimits(max_tokens=8))
    assert traj.token_ids == (10, 11, 12, EOT, 200, 201, 13, 10)
    assert traj.action_mask == (1, 1, 1, 1, 0, 0, 1, 1)
    assert traj.turn_ids == (0, 0, 0, 0, -1, -1, 1, 1)
    assert traj.truncated and not traj.success and traj.reward == 0.0
    assert len(env.seen) == 1


def test_turn_limit_truncates():
    traj = run_episode(
        ScriptedPolicy(three_turn_script(), PIECES), FakeEnv(fake_task()), PARAMS, RolloutLimits(max_turns=2)
    )
    assert traj.truncated and traj.turn_ids[-1] == 1 and traj.action_mask[-1] == 1  # ends on turn 1's tokens
    assert "max_turns" in traj.episode.info["truncated"]


turn_st = st.tuples(st.lists(st.sampled_from([10, 11, 12, 13, 15]), min_size=1, max_size=4), st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(turn_st, min_size=1, max_size=5), st.integers(4, 40))
def test_mask_invariants(turns, max_tokens):
    """Any script: mask marks exactly the sampled ids, turn ids count turns, arrays align."""
    script = [(tuple(ids) + ((EOT,) if fin else ()), fin) for ids, fin in turns]
    script[-1] = ((15, EOT), True)  # the last turn answers, so the episode ends
    policy = ScriptedPolicy(list(script), PIECES)
    traj = run_episode(policy, FakeEnv(fake_task()), PARAMS, RolloutLimits(max_tokens=max_tokens))
    n_turns = len(policy.contexts)
    sampled = [i for ids, _ in script[:n_turns] for i in ids]
    got = [t for t, m in zip(traj.token_ids, traj.action_mask) if m]
    assert got == sampled[: len(got)]
    if not traj.truncated:
        assert got == sampled
    # Sampled ids never pass the budget; only an environment answer (glue E + 2-token delta) may overrun it.
    assert len(traj.token_ids) <= max_tokens + 3
    assert sum(traj.action_mask[:max_tokens]) == sum(traj.action_mask)
    assert [t for t, m in zip(traj.turn_ids, traj.action_mask) if not m] == [-1] * traj.action_mask.count(0)
    assert sorted(set(t for t in traj.turn_ids if t >= 0)) == list(range(n_turns))
    assert all(tt == 0 for tt, m in zip(traj.token_types, traj.action_mask) if not m)
    assert all(tt > 0 for tt, m in zip(traj.token_types, traj.action_mask) if m)
    assert all(lp == 0.0 for lp, m in zip(traj.logprobs, traj.action_mask) if not m)

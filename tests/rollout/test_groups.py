"""Groups and runners: siblings share a prompt, differ in samples, and are batched across tasks."""

from __future__ import annotations

from fakes import FakeEnv, fake_task

from sgcd.policy.base import SamplingParams
from sgcd.rollout import PolicyRunner, RolloutLimits, make_group, run_groups

PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=6)


class CountingPolicy:
    """Proxy that counts generate() calls and the batch size of each."""

    def __init__(self, policy):
        self.policy, self.batches = policy, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, prompts, params):
        self.batches.append(len(prompts))
        return self.policy.generate(prompts, params)


def test_run_groups_batches_siblings_and_tasks(tiny_policy):
    policy = CountingPolicy(tiny_policy)
    tasks = [fake_task(0), fake_task(1)]
    groups = run_groups(policy, lambda t: FakeEnv(t, always_continue=True, max_turns=2), tasks, 3, PARAMS)
    assert policy.batches == [6, 6]  # 2 tasks x 3 siblings, one generate() per turn
    assert [g.task_id for g in groups] == ["t0", "t1"]
    for g in groups:
        assert [t.group_id for t in g.trajectories] == [0, 1, 2]
        assert len({t.prompt_ids for t in g.trajectories}) == 1  # one clean prompt per group
        assert len({t.token_ids for t in g.trajectories}) > 1  # siblings are different samples
        assert g.instruction.startswith("find item")


def test_batch_size_splits_generate_calls(tiny_policy):
    policy = CountingPolicy(tiny_policy)
    run_groups(
        policy,
        lambda t: FakeEnv(t, always_continue=True, max_turns=1),
        [fake_task()],
        5,
        PARAMS,
        RolloutLimits(batch_size=2),
    )
    assert policy.batches == [2, 2, 1]


def test_make_group_rejects_mixed_tasks(tiny_policy):
    g = run_groups(tiny_policy, FakeEnv, [fake_task(0), fake_task(1)], 1, PARAMS)
    try:
        make_group([g[0].trajectories[0], g[1].trajectories[0]], g[0].prompt)
    except ValueError as exc:
        assert "t0" in str(exc) and "t1" in str(exc)
    else:
        raise AssertionError("mixed tasks accepted")


def test_policy_runner_from_spec_returns_episodes():
    runner = PolicyRunner.from_spec("tiny", SamplingParams(max_new_tokens=4), batch_size=4)
    episodes = runner.run([FakeEnv(fake_task(i)) for i in range(3)])
    assert [e.task_id for e in episodes] == ["t0", "t1", "t2"]
    assert all(e.steps for e in episodes)

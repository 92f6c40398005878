"""SGCDRollout without a model: dynamic sampling (resample, then mask), the rows TRL receives, bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from sgcd.envs.base import Task
from sgcd.integrations.trl import SGCDOptions, SGCDRollout, env_reward
from sgcd.policy.base import Completion, SamplingParams
from sgcd.rollout import RolloutLimits
from sgcd.rollout.sampling import TaskSampler
from sgcd.types import Message, Observation, StepResult

EOT, PROMPT = 2, (100, 101, 102)
PIECES = {EOT: "", 10: "yes", 11: "no", 20: "obs"}


@dataclass
class OneTurnEnv:
    """Reward 1 iff the reply is 'yes'. A 'tool' reply first gets one observation (so env tokens exist)."""

    task: Task
    turns: int = 0

    def reset(self) -> Observation:
        return Observation(messages=(Message("user", self.task.instruction),))

    def step(self, text: str) -> StepResult:
        return StepResult(messages=(), done=True, reward=1.0 if text == "yes" else 0.0)


@dataclass
class ToyDomain:
    name: str = "toy"
    n: int = 8

    def tasks(self, split: str) -> list[Task]:
        return [Task(f"toy/{i}", split, "toy", f"task {i}") for i in range(self.n)]

    def make_env(self, task: Task) -> OneTurnEnv:
        return OneTurnEnv(task)


class Tok:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(PIECES[i] for i in ids if not (skip_special_tokens and i == EOT))


@dataclass
class ScriptPolicy:
    """Answers the rows of each generate() call from a script of 'y'/'n' letters, in order."""

    script: list[str]
    calls: list[int] = field(default_factory=list)
    eot_id: int = EOT
    tokenizer: Tok = field(default_factory=Tok)

    def encode_prompt(self, messages, tools=()):
        return list(PROMPT)

    def encode_delta(self, messages):
        return [20]

    def decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def generate(self, prompts, params):
        self.calls.append(len(prompts))
        out = []
        for _ in prompts:
            tok = 10 if self.script.pop(0) == "y" else 11
            out.append(Completion((tok, EOT), (-0.1, -0.2), PIECES[tok], True))
        return out


def _trainer(G: int):
    return SimpleNamespace(num_generations=G, num_generations_eval=G, model=SimpleNamespace(training=True))


def _rollout(script: str, max_rounds: int, dynamic: bool = True) -> tuple[SGCDRollout, ScriptPolicy]:
    policy = ScriptPolicy(list(script))
    ro = SGCDRollout(
        ToyDomain(), sampling=SamplingParams(max_new_tokens=4), limits=RolloutLimits(max_turns=1, max_tokens=16),
        dynamic_sampling=dynamic, max_rounds=max_rounds, seed=0,
    )  # fmt: skip
    ro.policy = lambda trainer: policy  # the model-free double replaces the live-model policy
    return ro, policy


def test_non_mixed_group_is_replaced_by_a_fresh_mixed_group():
    # round 1: task 0 = [y, y] (all pass), task 1 = [y, n] (mixed): 1 of 2 groups mixed.
    # refill_plan: missing 1, mixed rate 1/2 -> n_more = ceil(1 / 0.5) = 2 tasks: [n, n] (all fail), [n, y] (mixed)
    ro, policy = _rollout("yyynnnny", max_rounds=3)
    out = ro(["toy/0", "toy/0", "toy/1", "toy/1"], _trainer(2))
    assert policy.calls == [4, 4]  # two rounds, all rows of a round in one generate call
    assert out["env_reward"] == [0.0, 1.0, 1.0, 0.0]  # slot 0 now holds the refill's mixed group, slot 1 kept
    assert out["sgcd_mixed"] == [True] * 4
    assert out["env_mask"] == [[1, 1]] * 4  # sampled tokens (reply + end-of-turn) all trained
    refill_tasks = TaskSampler(ToyDomain().tasks("train"), 0).next(2)  # the rollout's seeded refill order
    assert out["sgcd_task_id"] == [refill_tasks[1].task_id] * 2 + ["toy/1", "toy/1"]
    assert ro.last.metrics["sampling/replaced"] == 1.0 and ro.last.metrics["sampling/rounds"] == 2.0
    assert env_reward(None, None, env_reward=out["env_reward"]) == out["env_reward"]


def test_group_still_not_mixed_after_max_rounds_is_masked_not_dropped():
    ro, policy = _rollout("yyyn", max_rounds=1)
    out = ro(["toy/0", "toy/0", "toy/1", "toy/1"], _trainer(2))
    assert policy.calls == [4]  # max_rounds=1: no refill
    assert len(out["completion_ids"]) == 4  # the batch shape TRL expects is kept
    assert out["env_mask"] == [[0, 0], [0, 0], [1, 1], [1, 1]]  # the all-pass group gets no loss tokens
    assert out["sgcd_mixed"] == [False, False, True, True]
    assert ro.last.kept_B.tolist() == [False, False, True, True]


def test_without_dynamic_sampling_every_group_trains():
    ro, _ = _rollout("yyyn", max_rounds=3, dynamic=False)
    out = ro(["toy/0", "toy/0", "toy/1", "toy/1"], _trainer(2))
    assert out["env_mask"] == [[1, 1]] * 4 and out["logprobs"] == [[-0.1, -0.2]] * 4
    assert out["prompt_ids"] == [list(PROMPT)] * 4


def test_rows_must_form_whole_groups_of_known_tasks():
    ro, _ = _rollout("", max_rounds=1)
    with pytest.raises(ValueError, match="not a multiple of num_generations=2"):
        ro(["toy/0", "toy/0", "toy/1"], _trainer(2))
    with pytest.raises(ValueError, match="not one task repeated G=2 times"):
        ro(["toy/0", "toy/1", "toy/1", "toy/1"], _trainer(2))
    with pytest.raises(ValueError, match="'nope' is not a task id of 'toy'"):
        ro(["nope", "nope"], _trainer(2))


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="max_rounds must be >= 1"):
        SGCDRollout(ToyDomain(), max_rounds=0)
    with pytest.raises(ValueError, match=r"SGCDOptions.teacher='reference'"):
        SGCDOptions(teacher="reference")
    with pytest.raises(ValueError, match=r"SGCDOptions.advantage='ppo'"):
        SGCDOptions(advantage="ppo")
    with pytest.raises(ValueError, match=r"SGCDOptions.eps: 1.5 must be in \(0, 1\)"):
        SGCDOptions(eps=1.5)


class FakeVLLMClient:
    """TRL's VLLMClient.generate interface: ids in; ids and per-token [sampled logprob] lists out."""

    def __init__(self, replies):
        self.replies, self.requests = replies, []

    def generate(self, prompts, **kw):
        self.requests.append((prompts, kw))
        ids = [self.replies[i % len(self.replies)] for i in range(len(prompts))]
        return {"completion_ids": ids, "logprobs": [[[-0.5]] * len(r) for r in ids]}


def test_vllm_server_policy_turns_server_output_into_completions():
    from sgcd.integrations.trl.vllm import VLLMServerPolicy

    client = FakeVLLMClient([[10, EOT], [11, 11]])  # one finished turn, one cut at max_tokens
    policy = VLLMServerPolicy(ScriptPolicy([]), client)
    out = policy.generate([[1, 2], [3]], SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=2))
    assert client.requests[0][0] == [[1, 2], [3]]
    kw = client.requests[0][1]
    assert (kw["temperature"], kw["top_p"], kw["max_tokens"], kw["logprobs"]) == (0.7, 0.9, 2, 0)
    assert kw["generation_kwargs"] == {"stop_token_ids": [EOT]}
    assert out[0] == Completion((10, EOT), (-0.5, -0.5), "yes", True)
    assert out[1] == Completion((11, 11), (-0.5, -0.5), "nono", False)
    assert policy.encode_prompt([]) == list(PROMPT)  # encoding stays with the wrapped policy


def test_vllm_colocate_mode_is_refused_with_the_reason():
    from sgcd.integrations.trl.vllm import server_client

    trainer = SimpleNamespace(args=SimpleNamespace(vllm_mode="colocate"))
    with pytest.raises(ValueError, match="vllm_mode='server'"):
        server_client(trainer)
    main = SimpleNamespace(
        args=SimpleNamespace(vllm_mode="server"), vllm_generation=SimpleNamespace(vllm_client="c")
    )
    assert server_client(main) == "c"  # the main process reuses TRL's client (the one that syncs weights)


def test_evaluation_never_resamples_or_masks():
    ro, policy = _rollout("yyyn", max_rounds=3)
    trainer = SimpleNamespace(
        num_generations=2, num_generations_eval=2, model=SimpleNamespace(training=False)
    )
    out = ro(["toy/0", "toy/0", "toy/1", "toy/1"], trainer)
    assert (
        policy.calls == [4] and out["env_mask"] == [[1, 1]] * 4
    )  # the all-pass group is neither replaced nor masked


def test_token_advantages_refuse_missing_inputs():
    import torch

    from sgcd.integrations.trl import RolloutBatch, sgcd_token_advantages

    ro, _ = _rollout("yn", max_rounds=1)
    ro(["toy/0", "toy/0"], _trainer(2))
    batch, mask = ro.last, torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="advantage='trl' needs trl_advantages_B"):
        sgcd_token_advantages(None, batch, mask, SGCDOptions())
    with pytest.raises(ValueError, match="teacher='pi_old' needs a summarizer"):
        sgcd_token_advantages(None, batch, mask, SGCDOptions(advantage="grpo"))
    with pytest.raises(ValueError, match="1 trajectories but TRL's batch has 2 rows"):
        one = RolloutBatch(groups=[batch.groups[0].__class__("t", batch.groups[0].trajectories[:1], batch.groups[0].prompt)],
                           kept_B=torch.ones(1, dtype=torch.bool))  # fmt: skip
        sgcd_token_advantages(None, one, mask, SGCDOptions(advantage="grpo"))
    # teacher=none with sgcd.core's GRPO: A = (R - mean) / (std + 1e-6) with R = [1, 0] -> +-0.5 / 0.7071 = +-0.7071
    step = sgcd_token_advantages(None, batch, mask, SGCDOptions(teacher="none", advantage="grpo"))
    assert torch.allclose(step.token_advantages_B_T, torch.tensor([[0.70711] * 2, [-0.70711] * 2]), atol=1e-5)
    assert torch.equal(step.weights_B_T, torch.ones(2, 2))

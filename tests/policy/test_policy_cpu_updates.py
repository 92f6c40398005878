"""Updates that fit a CPU: KV reuse across turns, autocast with float32 heads and master weights, the frozen
trunk, LoRA through peft, and the reference view (adapters disabled / initial tensors swapped back)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch

from sgcd.envs import get_domain
from sgcd.envs.base import Task
from sgcd.policy.base import SamplingParams
from sgcd.policy.hf import HFPolicy
from sgcd.policy.trainable import TrainableError, make_trainable, merged_state, save_trained
from sgcd.rollout import RolloutLimits, run_batch, run_episode
from sgcd.types import Message, Observation, StepResult


@pytest.fixture
def fresh(tiny_policy):
    """A private copy of the tiny policy (these tests change weights, adapters and flags)."""
    return HFPolicy(copy.deepcopy(tiny_policy.model), tiny_policy.tokenizer, seed=0)


def _airline_envs(n: int):
    domain = get_domain("airline-lite", families="flight_status,res_info", train_size=8, test_size=8)
    return domain, [domain.make_env(t) for t in domain.tasks("test")[:n]]


@dataclass
class LoopEnv:
    """Answers every turn with a tool message of a length that varies by task and turn, for `turns` turns (the
    random tiny model never makes a valid tool call, so real domains would end after its first turn)."""

    task: Task
    turns: int = 4
    seen: int = 0

    def reset(self) -> Observation:
        msgs = (Message("system", "You are an airline agent. " * 8), Message("user", self.task.instruction))
        return Observation(messages=msgs, tools=())

    def step(self, text: str) -> StepResult:
        self.seen += 1
        if self.seen >= self.turns:
            return StepResult(
                messages=(), done=True, reward=float(self.seen % 2), info={"reason": "final_answer"}
            )
        answer = Message("tool", f"result {self.seen}: " + "seat 12A " * (self.seen + len(self.task.task_id)))
        return StepResult(messages=(answer,), done=False)


def _loop_envs(n: int) -> list[LoopEnv]:
    return [LoopEnv(Task(f"t{'x' * i}", "test", "loop", f"find item {i} " * (i + 1)), turns=2 + i % 3)
            for i in range(n)]  # fmt: skip


# ---- multi-turn KV reuse ------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_reuse_across_turns_equals_reprefilling(fresh, temperature):
    """Episodes run with each episode's cache kept across turns give the same tokens as re-prefilling every turn
    (greedy and seeded sampling), log-probs within 1e-4, and later turns really hit the cache."""
    params = SamplingParams(temperature, 1.0, 24)
    limits = RolloutLimits(max_turns=4, max_tokens=400, batch_size=3)  # 5 episodes in chunks of 3

    def run(reuse: bool):
        fresh.reuse_kv = reuse
        fresh.sessions.clear()
        fresh.seed(11)
        return run_batch(fresh, _loop_envs(5), params, limits)

    plain, reused = run(False), run(True)
    assert fresh.sessions.hits > 0 and fresh.sessions.hit_tokens > 0
    assert len(fresh.sessions) == 0  # every episode ended, so none of their keys/values is kept
    multi_turn = [t for t in plain if max(t.turn_ids) >= 1]
    assert multi_turn, "the test needs episodes with more than one turn"
    for a, b in zip(plain, reused):
        assert a.token_ids == b.token_ids and a.action_mask == b.action_mask
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


def _varied_turns(policy: HFPolicy) -> list[int]:
    """Make the tiny model's turns vary in content and length, so that rounds do pause: its own greedy turns repeat
    one token and never end. Noisy weights vary the tokens; three frequent tokens become extra end-of-turn
    tokens. Returns a list that collects each generate call's per-row caps (a continued turn has a smaller one)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in policy.model.parameters():
            w.add_(torch.randn(w.shape, generator=g) * 0.3)
    policy.stop_ids = frozenset({policy.eot_id, 485, 553, 124})
    caps: list[int] = []
    original = policy.generate

    def counting(prompts, params, **kw):
        caps.extend(kw.get("max_new", []))
        return original(prompts, params, **kw)

    policy.generate = counting  # an instance attribute: `del policy.generate` restores the method
    return caps


@pytest.mark.parametrize("pause_share", [0.0, 0.9])
def test_kv_reuse_logprobs_equal_score(fresh, pause_share):
    """Sampling log-probs of every turn (KV reused; with pause_share, turns paused and continued) equal score() of
    the whole trajectory on action tokens: a continued turn's log-probs are those of one uninterrupted turn."""
    caps = _varied_turns(fresh) if pause_share else []
    fresh.seed(5)
    limits = RolloutLimits(max_turns=3, max_tokens=300, batch_size=4, pause_share=pause_share)
    trajs = run_batch(fresh, _loop_envs(6), SamplingParams(0.5, 1.0, 24), limits)
    assert max(max(t.turn_ids) for t in trajs) >= 1
    assert not pause_share or any(c < 24 for c in caps), "no turn was paused and continued"
    out = fresh.score([list(t.prompt_ids) for t in trajs], [list(t.token_ids) for t in trajs])
    for b, t in enumerate(trajs):
        for i, (m, lp) in enumerate(zip(t.action_mask, t.logprobs)):
            if m:
                assert abs(out.logprobs[b, i].item() - lp) < 1e-4


@pytest.mark.parametrize(("n_envs", "batch", "share", "one_turn"), [(6, 4, 0.75, False), (3, 3, 0.9, True)])
def test_continuous_batching_equals_round_by_round(fresh, n_envs, batch, share, one_turn):
    """Greedy, with rounds that hand back their unfinished turns (pause_share) and without: the same tokens, masks
    and log-probs (1e-4), though turns really were paused and continued. The second case leaves a paused turn
    alone in the next round (its siblings' one-turn episodes ended): it must still be continued."""
    caps = _varied_turns(fresh)

    def run(pause_share: float):
        fresh.sessions.clear()
        limits = RolloutLimits(max_turns=4, max_tokens=400, batch_size=batch, pause_share=pause_share)
        envs = _loop_envs(n_envs)
        for env in envs if one_turn else []:
            env.turns = 1
        return run_batch(fresh, envs, SamplingParams(0.0, 1.0, 24), limits)

    plain = run(0.0)
    assert caps == []  # round by round: generate is never asked to pause
    continuous = run(share)
    assert any(c < 24 for c in caps), "no turn was paused and continued"
    for a, b in zip(plain, continuous):
        assert a.token_ids == b.token_ids and a.action_mask == b.action_mask and a.turn_ids == b.turn_ids
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


def test_kv_store_is_dropped_when_weights_change(fresh):
    params = SamplingParams(0.0, 1.0, 8)
    env = _airline_envs(1)[1][0]
    run_episode(fresh, env, params, RolloutLimits(max_turns=1, max_tokens=100))
    assert len(fresh.sessions) == 1
    with torch.no_grad():
        next(fresh.model.parameters()).add_(1.0)  # what optimizer.step() does: bumps the version counter
    fresh.generate([[1, 2, 3]], params)
    assert len(fresh.sessions) == 1 and fresh.sessions.hits == 0  # the old entry is gone, only the new one


def test_kv_store_is_bounded(fresh):
    fresh.sessions.max_bytes = 1  # nothing fits: every entry is dropped at once, generation still works
    out = fresh.generate([[1, 2, 3, 4]], SamplingParams(0.0, 1.0, 4))
    assert len(fresh.sessions) == 0 and len(out[0].token_ids) >= 1


# ---- scoring paths ------------------------------------------------------------------------------------------


def test_select_scores_only_the_chosen_positions(fresh):
    prefixes, conts = [[1, 5, 9], [1, 7]], [[50, 51, 52, 53], [60, 61]]
    full = fresh.score(prefixes, conts, topk=2, with_entropy=True)
    sel = [[True, False, True, False], [False, True]]
    part = fresh.score(prefixes, conts, topk=2, with_entropy=True, select=sel)
    want = torch.tensor([[True, False, True, False], [False, True, False, False]])
    assert torch.equal(part.mask, want)
    torch.testing.assert_close(part.logprobs, full.logprobs * want, atol=1e-6, rtol=0)
    torch.testing.assert_close(part.entropy[want], full.entropy[want], atol=1e-6, rtol=0)
    assert torch.equal(part.topk_ids[want], full.topk_ids[want])
    assert part.logprobs[~want].abs().sum() == 0


def test_frozen_trunk_equals_full_body(fresh):
    """train_layers=1 of 2: the bottom block's hidden states are cached; scores equal the full forward and the
    gradient reaches only the top block."""
    prefixes, conts = [[1, 5, 9, 40], [1, 7]], [[50, 51, 52], [60, 61, 62, 63]]
    full = fresh.score(prefixes, conts, share_prefix=False).logprobs
    make_trainable(fresh, train_layers=1)
    assert fresh.trunk_blocks == 1
    old = fresh.score(prefixes, conts, share_prefix=False).logprobs
    assert len(fresh._trunk) == 2  # both rows cached
    new = fresh.score(prefixes, conts, grad=True)
    torch.testing.assert_close(old, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(new.logprobs.detach(), old, atol=1e-6, rtol=0)  # same path: ratio 1
    new.logprobs.sum().backward()
    body = fresh.body()
    assert body.layers[1].self_attn.q_proj.weight.grad is not None
    assert body.layers[0].self_attn.q_proj.weight.grad is None and body.embed_tokens.weight.grad is None


@pytest.mark.parametrize("autocast,tol", [("none", 1e-5), ("bfloat16", 1e-3)])
@pytest.mark.parametrize("train_layers", [0, 1])
def test_old_and_update_logprobs_share_one_path(fresh, autocast, tol, train_layers):
    """The PPO ratio is 1 at the first minibatch: old log-probs (no grad, micro-batches of the batch order) and
    the update's (grad, a permuted grouping) agree within 1e-5 in float32 and 1e-3 under bf16 autocast, on
    prompts that share a long prefix (the path that used to differ: the old pass reused the prefix cache)."""
    fresh.set_autocast(autocast)
    make_trainable(fresh, train_layers=train_layers)
    domain, envs = _airline_envs(4)
    prefixes = [fresh.encode_prompt(e.reset().messages, e.reset().tools) for e in envs]
    conts = [list(range(60 + k, 80 + 3 * k)) for k in range(4)]
    select = [[i % 3 != 0 for i in range(len(c))] for c in conts]
    old = [fresh.score([prefixes[i]], [conts[i]], select=[select[i]], share_prefix=False).logprobs[0]
           for i in range(4)]  # fmt: skip
    for rows in ([3, 0], [2, 1]):
        new = fresh.score([prefixes[i] for i in rows], [conts[i] for i in rows], grad=True,
                          select=[select[i] for i in rows])  # fmt: skip
        for j, i in enumerate(rows):
            n = len(conts[i])
            ratio = (new.logprobs[j, :n].detach() - old[i][:n]).exp()
            assert (ratio - 1).abs().max() < tol


def test_autocast_keeps_float32_heads_and_logprobs(fresh):
    fresh.set_autocast("bfloat16")
    out = fresh.score([[1, 5, 9]], [[50, 51, 52]])
    assert out.logprobs.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in fresh.model.parameters())


def test_autocast_lr_2e6_changes_every_trained_element(fresh):
    """bf16 autocast with float32 master weights: two AdamW steps at lr 2e-6 move every trained element
    (stored in bf16, 2e-6 updates of ~1e-2 weights round away: about 4% of elements moved, the issue's figure)."""
    fresh.set_autocast("bfloat16")
    make_trainable(fresh, train_layers=1)
    params = [p for p in fresh.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=2e-6)
    for _ in range(2):
        opt.zero_grad()
        fresh.score([[1, 5, 9, 40, 41]], [[50, 51, 52, 53, 54, 55]], grad=True).logprobs.sum().backward()
        opt.step()
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(params, before))
    total = sum(b.numel() for b in before)
    assert changed == total


def test_training_bf16_parameters_is_refused(fresh):
    fresh.model.to(torch.bfloat16)
    with pytest.raises(TrainableError, match="model.autocast=bfloat16"):
        make_trainable(fresh)


# ---- LoRA and the reference view ----------------------------------------------------------------------------


def test_lora_adapters_train_and_reference_equals_base(fresh, tmp_path):
    base = copy.deepcopy(fresh.model)
    prefixes, conts = [[1, 5, 9, 40]], [[50, 51, 52]]
    expect = HFPolicy(base, fresh.tokenizer).score(prefixes, conts).logprobs
    info = make_trainable(fresh, lora_rank=4, lora_alpha=8, lora_targets="q_proj,v_proj")
    assert 0 < info["model/trained_params"] < info["model/params"] / 10
    names = [n for n, p in fresh.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    opt = torch.optim.AdamW([p for p in fresh.model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (-fresh.score(prefixes, conts, grad=True).logprobs.sum()).backward()
        opt.step()
    trained = fresh.score(prefixes, conts).logprobs
    assert (trained - expect).abs().max() > 1e-3  # the adapters changed the policy
    with fresh.reference():
        torch.testing.assert_close(fresh.score(prefixes, conts).logprobs, expect, atol=1e-6, rtol=0)
    initial = dict(base.named_parameters())
    for n, p in fresh.causal_lm().named_parameters():
        if "lora_" not in n:  # the base weights never moved
            assert torch.equal(p, initial[n.replace(".base_layer", "")]), n
    save_trained(fresh, tmp_path / "final")
    assert (tmp_path / "final" / "adapter" / "adapter_config.json").exists()
    merged = HFPolicy.from_pretrained(tmp_path / "final")
    torch.testing.assert_close(merged.score(prefixes, conts).logprobs, trained, atol=1e-5, rtol=0)
    assert set(merged_state(fresh.model)) == set(base.state_dict()) - {"lm_head.weight"}  # tied: saved once


def test_grad_checkpoint_recomputes_blocks_with_equal_gradients(fresh):
    """LoRA over every block with model.grad_checkpoint: the same log-probs and adapter gradients as keeping the
    activations, and each block really runs twice in a gradient pass (forward, then the backward's recompute);
    without gradients, and after the pass, blocks run once and the flags are as before (eval mode)."""
    prefixes, conts = [[1, 5, 9, 40], [1, 5, 7]], [[50, 51, 52], [60, 61]]
    make_trainable(fresh, lora_rank=4, lora_alpha=8, lora_targets="q_proj,v_proj")
    calls = []
    for block in fresh.body().layers:  # count MLP runs (forward hooks do not fire in checkpoint's recompute)
        block.mlp.forward = (lambda f: lambda *a, **k: calls.append(1) or f(*a, **k))(block.mlp.forward)
    n_blocks = len(fresh.body().layers)

    def grads(ckpt: bool):
        fresh.grad_checkpoint = ckpt
        fresh.model.zero_grad()
        calls.clear()
        out = fresh.score(prefixes, conts, grad=True)
        (-out.logprobs.sum()).backward()
        named = {n: p.grad.clone() for n, p in fresh.model.named_parameters() if p.requires_grad}
        return out.logprobs.detach(), named, len(calls)

    lp0, g0, runs0 = grads(False)
    lp1, g1, runs1 = grads(True)
    assert runs0 == n_blocks and runs1 == 2 * n_blocks  # checkpointed: recomputed once in the backward
    torch.testing.assert_close(lp1, lp0, atol=0, rtol=0)
    assert g0.keys() == g1.keys() and any(g.abs().max() > 0 for g in g0.values())
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], atol=1e-6, rtol=1e-5)
    assert not any(b.training or b.gradient_checkpointing for b in fresh.body().layers)
    calls.clear()
    fresh.score(prefixes, conts)  # no gradient: a plain forward
    assert len(calls) == n_blocks


def test_reference_view_without_adapters_swaps_initial_tensors(fresh):
    prefixes, conts = [[1, 5, 9, 40]], [[50, 51, 52]]
    make_trainable(fresh, train_layers=1)
    fresh.keep_reference()
    expect = fresh.score(prefixes, conts).logprobs
    with torch.no_grad():
        fresh.body().layers[1].mlp.down_proj.weight.mul_(2.0)
    moved = fresh.score(prefixes, conts).logprobs
    assert (moved - expect).abs().max() > 1e-4
    with fresh.reference():
        torch.testing.assert_close(fresh.score(prefixes, conts).logprobs, expect, atol=1e-6, rtol=0)
    torch.testing.assert_close(fresh.score(prefixes, conts).logprobs, moved, atol=0, rtol=0)  # swapped back

"""SFT warm-start: gold examples are recorded by the rollout loop, the loss covers action tokens only and
equals the policy's own score(), training lowers it, and ensure_sft_model builds once per key."""

from __future__ import annotations

import pytest
import torch

from sgcd.envs import get_domain
from sgcd.trainer.gold import gold_trajectories
from sgcd.trainer.sft import (
    SFTConfig,
    _shared_prefix,
    ensure_sft_model,
    sft_loss,
    train,
    turn_health,
)


@pytest.fixture(scope="module")
def domain():
    return get_domain("airline-lite", train_size=6, test_size=2)


@pytest.fixture(scope="module")
def gold(tiny_policy, domain):
    return gold_trajectories(tiny_policy, domain, domain.tasks("train")[:3])


def test_gold_examples_are_rollout_trajectories(tiny_policy, domain, gold):
    """Each gold turn is tokenized alone + <|im_end|> with mask 1; the rest comes from encode_delta."""
    assert len(gold) == 3 and all(t.success and t.reward == 1.0 for t in gold)
    task = domain.tasks("train")[0]
    t = gold[0]
    opening = domain.make_env(task).reset()
    assert list(t.prompt_ids) == tiny_policy.encode_prompt(opening.messages, opening.tools)
    sampled = [tok for tok, m in zip(t.token_ids, t.action_mask) if m]
    expect = []
    for text in domain.gold_turns(task):
        expect += tiny_policy.tokenizer(text, add_special_tokens=False)["input_ids"] + [tiny_policy.eot_id]
    assert sampled == expect
    assert max(t.turn_ids) == len(domain.gold_turns(task)) - 1


@pytest.mark.parametrize("shared", [True, False])
def test_loss_is_mean_nll_of_action_tokens(tiny_policy, gold, shared):
    """sft_loss (with or without the shared-prefix cache) = -mean over action tokens of score() log-probs."""
    P = _shared_prefix(gold) if shared else 0
    assert not shared or P > 500  # the system prompt + tool schemas are shared
    cache = None
    if P:
        with torch.no_grad():
            body = tiny_policy.model.model
            cache = body(input_ids=torch.tensor([list(gold[0].prompt_ids[:P])]), use_cache=True)[
                tiny_policy._cache_kw
            ]
    with torch.no_grad():
        loss = sft_loss(tiny_policy, gold, P, cache).item()
    out = tiny_policy.score([list(t.prompt_ids) for t in gold], [list(t.token_ids) for t in gold])
    lps = [out.logprobs[b, j].item() for b, t in enumerate(gold) for j, m in enumerate(t.action_mask) if m]
    assert loss == pytest.approx(-sum(lps) / len(lps), abs=1e-4)


def test_training_lowers_the_loss(domain, gold):
    from sgcd.policy.models import load_policy

    policy = load_policy("tiny")  # a private copy: training changes the weights
    losses = train(policy, gold[:2], SFTConfig(steps=8, batch_size=2, lr=3e-3, warmup=1), progress=False)
    assert losses[-1] < losses[0] - 0.5
    assert all(p.requires_grad for p in policy.model.parameters())  # frozen blocks are released afterwards


def test_turn_health_by_hand(tiny_policy, gold):
    """Gold turns all end with <|im_end|> and parse: 100% well-formed; cutting the last token of the last turn
    makes that turn malformed: (n - 1) / n."""
    from dataclasses import replace

    h = turn_health(tiny_policy, gold)
    n = sum(max(t.turn_ids) + 1 for t in gold)
    assert h["turns"] == n and h["well_formed"] == 1.0 and h["success"] == 1.0
    t = gold[0]
    cut = replace(
        t,
        token_ids=t.token_ids[:-1],
        action_mask=t.action_mask[:-1],
        turn_ids=t.turn_ids[:-1],
        logprobs=t.logprobs[:-1],
        token_types=t.token_types[:-1],
    )
    assert turn_health(tiny_policy, [cut] + gold[1:])["well_formed"] == pytest.approx((n - 1) / n)


def test_ensure_sft_model_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_CACHE", str(tmp_path))
    config = SFTConfig(steps=1, batch_size=1)
    first = ensure_sft_model("tiny", "airline-lite", config, progress=False)
    assert (first / "sft.json").exists() and (first / "model.safetensors").exists()
    import sgcd.trainer.sft as sft_module

    monkeypatch.setattr(sft_module, "sft", lambda *a, **k: pytest.fail("rebuilt a cached warm-start"))
    assert ensure_sft_model("tiny", "airline-lite", config, progress=False) == first
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []


def test_cli_rejects_bad_budget(capsys):
    from sgcd.cli import main

    assert main(["sft", "--model", "tiny", "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert main(["sft", "--model", "tiny", "--env", "no-such-env"]) == 2
    assert "unknown environment 'no-such-env'" in capsys.readouterr().err


def test_lora_sft_trains_only_adapters_and_saves_a_merged_plain_model(domain, gold, tmp_path):
    """--lora-rank: the same make_trainable as `sgcd train`. The base weights stay bit-identical while the
    adapters train (the loss falls), and the result is a plain merged model whose weights moved."""
    from sgcd.policy.models import load_policy

    policy = load_policy("tiny")
    base = {k: v.clone() for k, v in policy.model.state_dict().items()}
    seen_trainable: list[str] = []
    real_step = torch.optim.AdamW.step

    def spy(opt, *a, **k):  # record which tensors the optimizer updates, once
        if not seen_trainable:
            seen_trainable.extend(
                n for n, p in policy.model.named_parameters() if p.requires_grad and p.grad is not None
            )
        return real_step(opt, *a, **k)

    torch.optim.AdamW.step = spy
    try:
        cfg = SFTConfig(steps=8, batch_size=2, lr=3e-3, warmup=1, lora_rank=4, train_layers=0)
        losses = train(policy, gold[:2], cfg, progress=False)
    finally:
        torch.optim.AdamW.step = real_step
    assert seen_trainable and all("lora_" in n for n in seen_trainable)
    assert losses[-1] < losses[0]
    assert not hasattr(policy.model, "disable_adapter")  # merged back into a plain model
    merged = policy.model.state_dict()
    assert set(merged) == set(base)
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert changed and all(any(p in k for p in ("q_proj", "k_proj", "v_proj", "o_proj")) for k in changed)


def test_sft_cache_key_without_lora_is_unchanged_by_the_lora_fields():
    """Adding the LoRA fields must not invalidate existing warm-start caches: with lora_rank=0 the key hashes
    the same fields as before; with lora_rank>0 it differs."""
    import hashlib
    import json
    from dataclasses import asdict

    from sgcd.trainer.sft import SFT_VERSION, sft_cache_key

    cfg = SFTConfig()
    old_fields = {k: v for k, v in asdict(cfg).items() if not k.startswith(("lora_", "reference"))}
    blob = json.dumps(["smollm2-135m", "airline-lite", old_fields, SFT_VERSION], sort_keys=True)
    assert (
        sft_cache_key("smollm2-135m", "airline-lite", cfg) == hashlib.sha256(blob.encode()).hexdigest()[:12]
    )
    assert sft_cache_key("smollm2-135m", "airline-lite", SFTConfig(lora_rank=4)) != sft_cache_key(
        "smollm2-135m", "airline-lite", cfg
    )

"""The reference-reading warm start (model.sft_reference): examples carry the RL teacher's prompt (a credit
reference from scripted siblings, built by the trainer's own summarizer path) and target the successful
sibling's action tokens; the failed siblings really fail under the environment's verifier; the cache key is
unchanged with the option off; a short SFT with the option on runs on the tiny model."""

from __future__ import annotations

import json

import pytest

from sgcd.credit_reference import make_summarizer, render_reference, teacher_prefixes
from sgcd.credit_reference.teacher import HEADER
from sgcd.envs import get_domain
from sgcd.envs.scripted import ScriptAgent, play
from sgcd.trainer.gold import gold_trajectories
from sgcd.trainer.sft import SFTConfig, reference_steps, sft, sft_cache_key
from sgcd.trainer.sft_reference import FAILURE_KINDS, reference_examples


@pytest.fixture(scope="module")
def domain():
    # train tasks 0..13 hold every failure kind and two recoverable wrong writes (tasks 4 and 13)
    return get_domain("airline-lite", train_size=14, test_size=2)


@pytest.fixture(scope="module")
def built(tiny_policy, domain):
    return reference_examples(tiny_policy, domain, domain.tasks("train"), max_tokens=512)


def _action_tokens(traj):
    return [tok for tok, m in zip(traj.token_ids, traj.action_mask) if m]


def test_follow_examples_carry_the_reference_and_target_the_success(tiny_policy, domain, built):
    """prompt = the RL teacher prefix (teacher_prefixes of the group with the offline summarizer's reference),
    whose system message holds the rendered reference; targets = the clean gold example's action tokens."""
    follows = [(e, gi) for e, (gi, kind) in zip(built.examples, built.sources) if kind == "follow"]
    assert len(follows) >= 10
    by_task = {t.task_id: t for t in gold_trajectories(tiny_policy, domain, domain.tasks("train"), 512)}
    summarizer = make_summarizer("offline")
    for example, gi in follows:
        group, ref = built.groups[gi], built.references[gi]
        assert ref == summarizer.summarize(group)  # the trainer's summarizer, deterministic
        assert list(example.prompt_ids) == teacher_prefixes(tiny_policy, group, ref)
        text = tiny_policy.decode(list(example.prompt_ids))
        assert HEADER in text and render_reference(ref) in text
        assert text.index(render_reference(ref)) < text.index(group.instruction)  # system, before the user
        gold = by_task[example.task_id]
        assert group.trajectories[0].success and example.success
        assert example.token_ids == gold.token_ids and example.action_mask == gold.action_mask
        assert _action_tokens(example) == _action_tokens(group.trajectories[0])
        assert len(example.prompt_ids) > len(gold.prompt_ids)


def test_failed_siblings_fail_under_the_verifier(domain, built):
    """Every sibling after the first failed, and replaying its assistant turns on a fresh environment gives the
    verifier's reward 0 again; across 14 tasks every failure kind occurs."""
    tasks = {t.task_id: t for t in domain.tasks("train")}
    seen = set()
    for group, kinds in zip(built.groups, built.failure_kinds):
        assert len(group.trajectories) == 1 + len(kinds) and group.is_mixed
        for traj, kind in zip(group.trajectories[1:], kinds):
            assert not traj.success and traj.reward < 1.0, (group.task_id, kind)
            script = [s.text for s in traj.episode.steps]
            replayed = play(domain, tasks[group.task_id], ScriptAgent(script))
            assert replayed.reward == 0.0 and not replayed.success, (group.task_id, kind)
            seen.add(kind)
    assert seen == set(FAILURE_KINDS)


def test_harmful_steps_are_absent_from_the_targets(built):
    """Where the reference marks a tool call harmful, the follow target never makes that call (by signature),
    and at least some follow examples have such a step to avoid."""
    from sgcd.credit_reference import signature

    with_harmful = 0
    for example, (gi, kind) in zip(built.examples, built.sources):
        ref = built.references[gi]
        harmful = {s.tool for s in ref.steps if s.polarity == "harmful"}
        if kind != "follow" or not harmful:
            continue
        with_harmful += 1
        made = {signature(c) for s in example.episode.steps for c in s.calls}
        harmful_sigs = {
            f"{s.tool}({s.arg_pattern.split(';')[0].replace(', ', ',')})"
            + ("!error" if "returned an error" in s.arg_pattern else "")
            for s in ref.steps
            if s.polarity == "harmful"
        }
        assert not made & harmful_sigs, (example.task_id, made, harmful_sigs)
    assert with_harmful >= 4


def test_recover_examples_mask_the_blamed_call(built):
    """Recover: the wrong write errored (state unchanged), the gold continues and the verifier passes it; the
    erroring turn is context (mask 0) and the reference blames it (an !error step marked harmful)."""
    recovers = [(e, gi) for e, (gi, kind) in zip(built.examples, built.sources) if kind == "recover"]
    assert len(recovers) >= 2
    for example, gi in recovers:
        assert example.success
        bad = [s for s in example.episode.steps if s.calls and all(c.error for c in s.calls)]
        assert len(bad) == 1
        masked = [m for m, t in zip(example.action_mask, example.turn_ids) if t == bad[0].turn]
        assert masked and not any(masked)
        assert sum(example.action_mask) > 0  # the turns after it are targets
        ref = built.references[gi]
        assert any(s.polarity == "harmful" and "returned an error" in s.arg_pattern for s in ref.steps)


def test_reference_steps_spread_the_share():
    assert reference_steps(4, 0.5) == [False, True, False, True]
    assert reference_steps(5, 0.0) == [False] * 5
    assert reference_steps(3, 1.0) == [True] * 3
    assert sum(reference_steps(40, 0.25)) == 10


def test_cache_key_is_unchanged_with_the_option_off():
    """Off: the key is the one from before the option existed (the share is ignored), so cached warm starts stay
    valid; on: a different key, and the share matters."""
    import hashlib
    from dataclasses import asdict

    from sgcd.trainer.sft import SFT_VERSION

    cfg = SFTConfig()
    old_fields = {
        k: v for k, v in asdict(cfg).items() if not k.startswith("lora_") and not k.startswith("reference")
    }
    blob = json.dumps(["smollm2-135m", "airline-lite", old_fields, SFT_VERSION], sort_keys=True)
    key = sft_cache_key("smollm2-135m", "airline-lite", cfg)
    assert key == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert sft_cache_key("smollm2-135m", "airline-lite", SFTConfig(reference_share=0.9)) == key
    on = sft_cache_key("smollm2-135m", "airline-lite", SFTConfig(reference=True))
    assert on != key
    assert (
        sft_cache_key("smollm2-135m", "airline-lite", SFTConfig(reference=True, reference_share=0.25)) != on
    )


def test_short_sft_with_references_runs_on_the_tiny_model(domain, tmp_path, monkeypatch):
    """Two steps, share 0.5: step 1 trains a clean batch, step 2 a batch whose prompts carry a reference;
    sft.json reports the reference examples."""
    import sgcd.trainer.sft as sft_module

    seen = []
    real = sft_module.sft_loss

    def spy(policy, trajs, P, cache):
        seen.append([HEADER in policy.decode(list(t.prompt_ids)) for t in trajs])
        return real(policy, trajs, P, cache)

    monkeypatch.setattr(sft_module, "sft_loss", spy)
    cfg = SFTConfig(steps=2, batch_size=2, warmup=1, reference=True, reference_share=0.5)
    out = sft("tiny", domain, config=cfg, out=tmp_path / "m", progress=False)
    assert seen == [[False, False], [True, True]]
    meta = json.loads((out / "sft.json").read_text())
    ref = meta["reference"]
    assert ref["steps"] == 1 and ref["clean_steps"] == 1 and ref["examples"] >= 1
    assert ref["prompt_tokens_mean"] > ref["clean_prompt_tokens_mean"]
    assert all(x == x for x in meta["losses"])  # finite (not NaN)
    assert (out / "model.safetensors").exists()


def test_config_fields_validate_and_reach_the_warm_start(monkeypatch):
    """model.sft_reference / sft_reference_share: off by default; refused where no warm start runs or no step
    would carry a reference; load_models hands both to SFTConfig."""
    from sgcd.trainer.config import ConfigError, RunConfig, make_config

    m = RunConfig().model
    assert m.sft_reference is False and m.sft_reference_share == 0.5
    cfg = make_config("default", ["model.sft_reference=true", "model.sft_reference_share=0.25"])
    with pytest.raises(ConfigError, match="sft_warmstart"):
        make_config("smoke", ["model.sft_reference=true"])  # tiny + sft_warmstart=off: nothing to change
    with pytest.raises(ConfigError, match="sft_reference_share"):
        make_config("default", ["model.sft_reference=true", "model.sft_reference_share=0"])
    with pytest.raises(ConfigError, match="sft_reference_share"):
        make_config("default", ["model.sft_reference_share=1.5"])

    import sgcd.trainer.sft as sft_module
    from sgcd.trainer.setup import load_models

    seen = []

    def fake(model, env, budget, **kw):
        seen.append(budget)
        raise RuntimeError("stop before loading a model")

    monkeypatch.setattr(sft_module, "ensure_sft_model", fake)
    with pytest.raises(RuntimeError, match="stop"):
        load_models(cfg)
    assert seen[0].reference is True and seen[0].reference_share == 0.25
    assert seen[0] == SFTConfig(reference=True, reference_share=0.25)


def test_cli_passes_the_reference_options(monkeypatch, capsys):
    import sgcd.trainer.sft as sft_module
    from sgcd.cli import main

    assert main(["sft", "--model", "tiny", "--reference", "--reference-share", "0"]) == 2
    assert "--reference-share must be in (0, 1]" in capsys.readouterr().err
    seen = []

    def fake(model, env, config, *a, **k):
        seen.append(config)
        raise FileNotFoundError("stop")

    monkeypatch.setattr(sft_module, "ensure_sft_model", fake)
    assert main(["sft", "--model", "tiny", "--reference", "--reference-share", "0.25", "--no-progress"]) == 2
    assert seen[0].reference is True and seen[0].reference_share == 0.25
    assert main(["sft", "--model", "tiny", "--no-progress"]) == 2
    assert seen[1].reference is False

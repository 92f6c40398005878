"""The tau3-airline preset (sgcd/presets/tau3-airline.yaml): a valid RunConfig whose env options the domain
accepts (no endpoint called)."""

from __future__ import annotations

from sgcd.envs import get_domain
from sgcd.trainer.config import make_config


def test_preset_loads_and_builds_the_domain_offline():
    cfg = make_config("tau3-airline")
    assert (cfg.env.name, cfg.env.train_split, cfg.env.eval_split) == ("tau3-airline", "train", "test")
    assert cfg.model.name == "Qwen/Qwen3.5-4B" and cfg.model.device == "cuda"
    dom = get_domain(cfg.env.name, seed=cfg.seed, **cfg.env.options)  # as the trainer builds it
    assert len(dom.tasks(cfg.env.train_split)) == 30 and len(dom.tasks(cfg.env.eval_split)) == 20
    assert dom.limits.max_steps == 200 and dom.limits.max_errors == 10
    grpo = make_config("tau3-airline", ["algorithm.name=grpo"])  # the matched comparator differs in one key
    assert grpo.algorithm.name == "grpo" and grpo.env == cfg.env

"""configs/verl/*.yaml compose against verl's own ppo_trainer config (Hydra, struct mode: a key verl does not
know is an error), select the plugin, and carry an `sgcd:` block the plugin accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sgcd.integrations.verl import AGENT_NAME, TRAINER_MODE
from sgcd.integrations.verl.credit import SGCDOptions

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "verl"
ENVS = {"airline-lite": "airline-lite", "tau3-airline": "tau3-airline", "appworld": "appworld"}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_config_composes_and_selects_the_plugin(name):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=name)
    assert cfg.trainer.use_v1 is True and cfg.trainer.v1.trainer_mode == TRAINER_MODE
    assert cfg.actor_rollout_ref.rollout.agent.default_agent_loop == AGENT_NAME
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.filter_groups.enable is True
    assert cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.data.train_files.endswith(f"/{ENVS[name]}/train.parquet")
    opts = SGCDOptions.from_config(cfg)
    assert opts.variant == "sgcd" and opts.uses_teacher
    # verl's interpolations resolve (rollout lengths follow data lengths)
    resolved = OmegaConf.to_container(cfg.actor_rollout_ref.rollout, resolve=True)
    assert resolved["response_length"] == cfg.data.max_response_length


def _leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_verl_key_the_config_sets_exists_in_verl(name):
    """Hydra lets a primary config add keys, so a typo would pass silently: check each one against verl's base."""
    import verl.trainer.config as verl_config

    raw = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"))
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        base = compose(config_name="ppo_trainer")
    ours = {k: v for k, v in raw.items() if k not in ("hydra", "defaults", "sgcd")}
    missing = [p for p in _leaves(ours) if not _has(base, p)]
    assert missing == []


def _has(cfg, path):
    node = cfg
    for part in path.split("."):
        if not OmegaConf.is_dict(node) or part not in node.keys():  # keys(): "???" values count
            return False
        node = node._get_node(part)
    return True


def test_override_to_the_grpo_comparator():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="airline-lite", overrides=["sgcd.variant=grpo"])
    assert not SGCDOptions.from_config(cfg).uses_teacher


def test_unknown_verl_key_is_refused():
    """The guard the test above relies on: a key verl's schema lacks does not compose."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        with pytest.raises(Exception, match="no_such_key"):
            compose(config_name="airline-lite", overrides=["algorithm.no_such_key=1"])

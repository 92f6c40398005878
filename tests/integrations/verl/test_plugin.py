"""The plugin registers through verl's own entry-point loading, and refuses an unsupported verl clearly.

verl 0.9.1 (verl/__init__.py) loads every entry point of the group `verl.plugins` at the end of `import verl`
with `EntryPoint.load()`: it imports the module and fetches the attribute, calls nothing, and logs a failure only
at DEBUG level. So the check is that after a plain `import verl` (conftest) our plugin module is loaded and the
names are in verl's own registries, not ours.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import verl

from sgcd.integrations.verl import AGENT_NAME, TRAINER_MODE, VerlVersionError, check_verl_version


def test_entry_point_is_declared():
    (ep,) = [e for e in entry_points(group="verl.plugins") if e.name == "sgcd"]
    assert ep.value == "sgcd.integrations.verl.plugin:register"


def test_import_verl_registers_trainer_mode_and_agent_loop():
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    assert "sgcd.integrations.verl.plugin" in sys.modules
    cls = get_trainer_cls(TRAINER_MODE)
    assert issubclass(cls, PPOTrainerSync) and cls.__name__ == "SGCDTrainer"
    assert "_compute_advantage" in cls.__dict__
    assert _agent_loop_registry[AGENT_NAME] == {"_target_": "sgcd.integrations.verl.agent_loop.SGCDAgentLoop"}


def test_plain_import_verl_in_a_fresh_process_loads_the_plugin():
    """Nothing from sgcd is imported first: only verl's entry-point discovery can load the plugin."""
    code = (
        "import sys, verl\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "print('plugin' if 'sgcd.integrations.verl.plugin' in sys.modules else 'missing', "
        "get_trainer_cls('sgcd').__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["plugin", "SGCDTrainer"]


@pytest.mark.parametrize("version", ["0.9.1", "0.9.7"])
def test_supported_versions_pass(version):
    assert check_verl_version(version) == version


@pytest.mark.parametrize("version", ["0.8.3", "0.9.0", "0.10.0", "1.0.0", "not-a-version"])
def test_unsupported_versions_are_refused_by_name(version):
    with pytest.raises(VerlVersionError, match=rf"installed verl is {version}.*pip install"):
        check_verl_version(version)


def test_registration_on_an_old_verl_fails_loudly(monkeypatch, caplog):
    """verl swallows plugin exceptions at DEBUG level, so register() also logs the reason at ERROR level."""
    from sgcd.integrations.verl import plugin

    assert check_verl_version() == verl.__version__
    monkeypatch.setattr(verl, "__version__", "0.8.0")
    monkeypatch.setattr(plugin, "_done", False)
    with caplog.at_level(logging.ERROR, logger="sgcd.integrations.verl"):
        with pytest.raises(VerlVersionError, match="0.8.0"):
            plugin.register()
    assert any("not registered" in r.getMessage() and "0.8.0" in r.getMessage() for r in caplog.records)

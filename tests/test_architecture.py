"""The package's dependency rules (docs/architecture.md), checked on the source by reading its imports.

- core/ imports torch (and the standard library) only: the paper's math has no I/O and no config objects.
- eval/ never reaches credit_reference/, directly or through anything it imports from sgcd: the deployed
  student cannot see sibling evidence.
- envs/, policy/ and credit_reference/ never import trainer/ or integrations/ (dependencies point one way).
- integrations/ never import trainer/: the engines reach the algorithm through sgcd.algorithm, scoring through
  sgcd.policy.scoring and the task sampler through sgcd.rollout.sampling (issue 18).
- algorithm.py imports core (lazily) and nothing above it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sgcd"


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in the file (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("sgcd",) + path.relative_to(SRC).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def _files(sub: str) -> list[Path]:
    return sorted((SRC / sub).rglob("*.py"))


def test_rules_see_the_source():
    # Guards the checks below against passing vacuously on an empty or moved tree.
    assert len(_files("core")) >= 5 and len(_files("eval")) >= 2


def test_core_imports_torch_and_stdlib_only():
    allowed_roots = {"torch", "sgcd"} | set(sys.stdlib_module_names)
    for path in _files("core"):
        for name in _imports(path):
            root = name.split(".")[0]
            assert root in allowed_roots, f"{path.relative_to(SRC)} imports {name}"
            if root == "sgcd":
                assert name.startswith("sgcd.core"), f"{path.relative_to(SRC)} imports {name} outside core"


@pytest.mark.parametrize("sub", ["envs", "policy", "credit_reference", "core", "rollout", "eval"])
def test_lower_layers_never_import_trainer_or_integrations(sub):
    for path in _files(sub):
        for name in _imports(path):
            assert not name.startswith(("sgcd.trainer", "sgcd.integrations")), (
                f"{path.relative_to(SRC)}: {name}"
            )


def test_integrations_never_import_the_trainer():
    assert len(_files("integrations")) >= 8
    for path in _files("integrations"):
        for name in _imports(path):
            assert not name.startswith("sgcd.trainer"), f"{path.relative_to(SRC)}: {name}"


def test_algorithm_sits_on_core_only():
    for name in _imports(SRC / "algorithm.py"):
        if name.startswith("sgcd"):
            assert name.startswith("sgcd.core"), f"algorithm.py imports {name}"


def test_eval_never_imports_credit_reference_statically():
    for path in _files("eval"):
        for name in _imports(path):
            assert not name.startswith("sgcd.credit_reference"), f"{path.relative_to(SRC)} imports {name}"


def test_eval_never_loads_credit_reference_at_run_time():
    # Importing the whole eval package (and running a scripted evaluation) must not pull the module in
    # through some transitive import.
    code = (
        "import sys\n"
        "import sgcd.eval as ev\n"
        "from sgcd.envs import get_domain\n"
        "d = get_domain('airline-lite', test_size=3)\n"
        "r = ev.evaluate(ev.make_runner('scripted:gold', d), d, 'test', progress=False)\n"
        "assert r.success_rate == 1.0, r.success_rate\n"
        "bad = sorted(m for m in sys.modules if m.startswith('sgcd.credit_reference'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)

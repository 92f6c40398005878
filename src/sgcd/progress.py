"""Progress for people watching a run: a rich bar on a terminal, plain lines everywhere else.

Under nohup, SLURM, `| tee` or CI, stderr is a file or a pipe: a rich bar there prints nothing until it stops and
then one line cut to the console width, so a long run looks dead. Every command therefore asks `on_terminal()`
and, off a terminal, prints one flushed line per unit of work instead (`step N ...` for training, a line per
batch for evaluation), never a bar. The trainer, `sgcd eval`, `sgcd sft` and `sgcd compare` share this rule.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


def on_terminal(stream: TextIO | None = None) -> bool:
    """True when `stream` (default: stderr) is an interactive terminal, where bars may be drawn."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def no_library_bars_off_terminal() -> None:
    """Off a terminal, switch off the tqdm bars of Hugging Face libraries (weight loading, shard writing,
    downloads): the environment variable for libraries not imported yet, their switch for those already in."""
    if on_terminal():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def line(text: str, stream: TextIO | None = None) -> None:
    """One progress line on stderr, flushed at once (so `tail -f` and log collectors see it immediately)."""
    print(text, file=stream if stream is not None else sys.stderr, flush=True)


def _num(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "-"


def step_line(step: int, total: int | None, m: dict[str, Any]) -> str:
    """`step N/T  success S  mixed K/G  w_std W  loss L  X.X s` (then held-out success and skips when present).

    success: training success rate of the step's rollouts; mixed: mixed groups found / groups sampled; w_std: the
    spread of the credit weights (`-` for grpo or a skipped step); loss: the policy loss; s: the step's seconds.
    """
    head = f"step {step}/{total}" if total else f"step {step}"
    n_mixed, n_groups = m.get("sampling/n_mixed"), m.get("sampling/n_groups")
    mixed = f"{n_mixed:.0f}/{n_groups:.0f}" if isinstance(n_mixed, (int, float)) and n_groups else "-"
    parts = [
        head,
        f"success {_num(m.get('reward/success_rate'), '{:.2f}')}",
        f"mixed {mixed}",
        f"w_std {_num(m.get('credit/w_std'), '{:.4f}')}",
        f"loss {_num(m.get('loss/policy'), '{:+.4f}')}",
        f"{_num(m.get('time/step_s'), '{:.1f}')} s",
    ]
    if isinstance(m.get("eval/success"), (int, float)):
        parts.append(f"eval {m['eval/success']:.3f}")
    if m.get("sampling/skipped"):
        parts.append("skipped (no mixed group)")
    return "  ".join(parts)

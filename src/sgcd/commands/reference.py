"""`sgcd reference show | demo`: look at sibling evidence and the credit reference built from it.

sgcd reference show RUN_DIR_OR_GROUPS.jsonl [--index N] [--summarizer SPEC] [--recompute]
    evidence and reference side by side for each group record (a run's samples/*.jsonl, or a group file
    written by group_to_json / `demo --write`); the stored reference is shown unless --recompute or none.
sgcd reference demo [--env airline-lite] [--split train] [--index 19] [--agents gold,noisy:0.3,...]
    runs scripted siblings on one task, then prints the evidence, the reference and the teacher's system
    prompt; --write FILE appends the group as one JSON line (a file `show` reads).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sgcd.cli import CliError

DEMO_AGENTS = "gold,noisy:0.3,noisy:0.3,noisy:0.3,read-only"


def _summarizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--summarizer", default="offline", help="offline | openai:MODEL | hf:MODEL (default offline)"
    )
    p.add_argument(
        "--summarizer-base-url",
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1",
    )
    p.add_argument("--summarizer-api-key-env", default=None, help="environment variable holding the API key")
    p.add_argument("--summarizer-timeout", type=float, default=None, help="seconds per request")
    p.add_argument("--summarizer-cache-dir", default=None, help="on-disk reference cache (LLM summarizers)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("reference", help="inspect sibling evidence and credit references", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="reference_command", metavar="ACTION")
    show = sub.add_parser("show", help="evidence and reference side by side")
    show.add_argument("path", help="a run directory (reads samples/*.jsonl) or a group JSONL file")
    show.add_argument("--index", type=int, default=None, help="only the N-th group record (0-based)")
    show.add_argument("--limit", type=int, default=5, help="show at most this many records (default 5)")
    show.add_argument(
        "--recompute", action="store_true", help="summarize again even if a reference is stored"
    )
    show.add_argument(
        "--plain", action="store_true", help="plain text sections instead of a side-by-side table"
    )
    _summarizer_args(show)
    show.set_defaults(func=_show)
    demo = sub.add_parser("demo", help="scripted siblings on one task -> evidence, reference, teacher prompt")
    demo.add_argument("--env", default="airline-lite", help="domain name (default airline-lite)")
    demo.add_argument("--split", default="train")
    demo.add_argument("--index", type=int, default=19, help="task index in the split (default 19)")
    demo.add_argument(
        "--agents", default=DEMO_AGENTS, help=f"comma-separated scripted agents (default {DEMO_AGENTS})"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the noisy agents")
    demo.add_argument("--write", default=None, help="append the group (and its reference) to this JSONL file")
    demo.add_argument("--plain", action="store_true", help="plain text (no colour or boxes)")
    _summarizer_args(demo)
    demo.set_defaults(func=_demo)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _make_summarizer(args: argparse.Namespace) -> Any:
    from sgcd.credit_reference import make_summarizer

    opts = {}
    if args.summarizer != "offline":
        opts = {"base_url": args.summarizer_base_url, "api_key_env": args.summarizer_api_key_env,
                "timeout": args.summarizer_timeout, "cache_dir": args.summarizer_cache_dir}  # fmt: skip
        if args.summarizer.startswith("hf:"):
            opts = {"cache_dir": args.summarizer_cache_dir}
    try:
        return make_summarizer(args.summarizer, **opts)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _records(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    from sgcd.credit_reference.group_io import iter_records

    try:
        records = list(iter_records(args.path))
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.index is not None:
        if not 0 <= args.index < len(records):
            raise CliError(
                f"--index {args.index} is out of range: {args.path} holds {len(records)} group records"
            )
        return [records[args.index]]
    return records[: max(args.limit, 0)]


def _show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table
    from rich.text import Text

    from sgcd.credit_reference import CreditReference, group_from_json, render_reference, select_evidence

    records = _records(args)
    summarizer = None
    console = Console(no_color=args.plain)
    for where, record in track(records, description="summarizing", console=console, disable=len(records) < 3):
        try:
            group = group_from_json(record)
            stored = record.get("reference")
            ref = CreditReference.model_validate(stored) if stored and not args.recompute else None
        except ValueError as exc:
            raise CliError(f"{where}: {exc}") from None
        evidence = select_evidence(group)
        source = "stored"
        if ref is None:
            summarizer = summarizer or _make_summarizer(args)
            ref, source = summarizer.summarize(group), summarizer.name
        title = f"{where}  task {group.task_id}  step {record.get('step', '-')}  reference: {source}"
        if args.plain:
            print(
                f"### {title}\n\n--- evidence ---\n{evidence.render()}\n\n--- reference ---\n{render_reference(ref)}\n"
            )
            continue
        table = Table(title=Text(title), show_lines=False, expand=True)
        table.add_column("Evidence (as the summarizer reads it)", ratio=1, overflow="fold")
        table.add_column("Credit reference (as the teacher reads it)", ratio=1, overflow="fold")
        table.add_row(Text(evidence.render()), Text(render_reference(ref)))
        console.print(table)
    if summarizer is not None:
        metrics = {k: v for k, v in summarizer.metrics().items() if v}
        console.print(json.dumps(metrics, indent=None, sort_keys=True))
    return 0


def build_demo_group(env: str, split: str, index: int, agents: str, seed: int = 0) -> Any:
    """Scripted siblings (one per agent spec) on one task, as a text-level TrajectoryGroup."""
    from sgcd.envs import get_domain
    from sgcd.envs.scripted import scripted_factory
    from sgcd.eval.runners import TextAgentRunner
    from sgcd.types import Observation, Trajectory, TrajectoryGroup

    try:
        domain = get_domain(env)
        tasks = domain.tasks(split)
        factories: dict[str, Any] = {}
        specs = [s.strip() for s in agents.split(",") if s.strip()]
        for spec in specs:
            factories.setdefault(spec, scripted_factory(spec, domain, seed=seed))
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    if not 0 <= index < len(tasks):
        raise CliError(f"--index {index} is out of range: {env} split {split!r} has {len(tasks)} tasks")
    task = tasks[index]
    opening: Observation | None = None
    trajs = []
    for spec in specs:
        env_ = domain.make_env(task)
        opening = opening or env_.reset()
        episode = TextAgentRunner(agent_factory=factories[spec]).run_one(env_)
        trajs.append(Trajectory(episode, (), (), (), (), (), group_id=len(trajs)))
    return TrajectoryGroup(task.task_id, tuple(trajs), opening, instruction=task.instruction)


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    from sgcd.credit_reference import group_to_json, select_evidence, teacher_messages

    group = build_demo_group(args.env, args.split, args.index, args.agents, args.seed)
    summarizer = _make_summarizer(args)
    evidence = select_evidence(group)
    ref = summarizer.summarize(group)
    system = teacher_messages(group.prompt.messages, ref)[0].content
    labels = ", ".join(
        f"{a}={'success' if t.success else 'failure'}"
        for a, t in zip(args.agents.split(","), group.trajectories)
    )
    sections = [
        (f"Group: {group.task_id}, siblings {labels}", evidence.render()),
        (f"Reference ({summarizer.name}), JSON", json.dumps(ref.model_dump(mode="json"), indent=1)),
        ("Teacher system prompt (clean system prompt + reference)", system),
    ]
    if args.plain:
        for title, body in sections:
            print(f"===== {title} =====\n{body}\n")
    else:
        console = Console()
        for title, body in sections:
            console.print(Panel(Text(body), title=Text(title), title_align="left"))
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(group_to_json(group, reference=ref)) + "\n")
    return 0

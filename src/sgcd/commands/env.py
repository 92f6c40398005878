"""`sgcd env list | show | stats`: inspect tool-use environments from the command line.

list   the registered environments
show   one task: instruction, policy excerpt, tools, and the gold trajectory replayed through the env
hash   one sha256 over every task of a split (id, instruction, gold turns, start/gold database hashes when the
       domain records them): compare it across runs and machines
stats  per family: task count, gold horizon distribution, and success of the scripted gold, read-only and
       noisy:p policies (the table in docs/environments.md is `sgcd env stats airline-lite --markdown`), and
       the opening prompt's length in tokens (system policy + tool block + first user turn, as HFPolicy encodes
       it) with the tokenizer of `--model` (default: the default model); `--json FILE` writes all of it
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from sgcd.cli import CliError

NOISE = (0.1, 0.3, 0.5)


def register(subparsers) -> None:
    parser = subparsers.add_parser("env", help="list, show and check environments", description=__doc__)
    parser.set_defaults(func=lambda a: (parser.print_help(), 0)[1])
    sub = parser.add_subparsers(dest="env_command", metavar="ACTION")
    p = sub.add_parser("list", help="registered environments")
    p.set_defaults(func=_list)
    p = sub.add_parser("show", help="one task with its gold trajectory")
    _common(p)
    p.add_argument("--index", type=int, default=0, help="task index within the split (default 0)")
    p.set_defaults(func=_show)
    p = sub.add_parser("hash", help="a fingerprint of a split, to compare across runs and machines")
    _common(p)
    p.set_defaults(func=_hash)
    p = sub.add_parser("stats", help="families, horizons and scripted-policy success per family")
    _common(p)
    p.add_argument("--limit", type=int, default=None, help="only the first N tasks of the split")
    p.add_argument("--noise", default=",".join(map(str, NOISE)), help="noisy:p levels, comma separated")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for the docs)")
    p.add_argument(
        "--json", dest="json_out", default=None, metavar="FILE", help="also write the stats as JSON"
    )
    p.add_argument(
        "--model",
        default=None,
        help="whose tokenizer counts prompt_tokens (default: the default model, smollm2-135m; 'none' skips)",
    )
    p.set_defaults(func=_stats)


def add_option_argument(p: argparse.ArgumentParser) -> None:
    """`--option KEY=VALUE` (alias `--env-opt`), repeatable: domain options, shared by `sgcd env` and `eval`."""
    p.add_argument(
        "--option",
        "--env-opt",
        dest="option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="domain option, repeatable (e.g. max_horizon=3)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="environment name (see `sgcd env list`)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--seed", type=int, default=0, help="domain seed (default 0)")
    add_option_argument(p)


def parse_options(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> options; values parse as JSON when they can (numbers, lists), else stay strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_domain(name: str, seed: int = 0, options: list[str] | None = None) -> Any:
    from sgcd.envs import get_domain

    try:
        return get_domain(name, seed=seed, **parse_options(options or []))
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CliError(str(exc)) from exc


def _tasks(domain: Any, split: str) -> list[Any]:
    try:
        return domain.tasks(split)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _list(args: argparse.Namespace) -> int:
    from sgcd.envs import list_domains

    for name in list_domains():
        print(name)
    return 0


def _show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    domain = load_domain(args.name, args.seed, args.option)
    tasks = _tasks(domain, args.split)
    if not 0 <= args.index < len(tasks):
        raise CliError(f"--index {args.index} out of range: split {args.split!r} has {len(tasks)} tasks")
    task = tasks[args.index]
    console = Console()
    env = domain.make_env(task)
    obs = env.reset()
    meta = {
        k: v
        for k, v in task.data.items()
        if k in ("horizon", "n_calls", "writes", "rule", "outcome", "required")
    }
    console.print(
        Panel(f"{task.instruction}\n\n[dim]{json.dumps(meta)}[/dim]", title=f"{task.task_id} ({task.family})")
    )
    system = obs.messages[0].content if obs.messages and obs.messages[0].role == "system" else ""
    console.print(Panel(system[:1200] + (" ..." if len(system) > 1200 else ""), title="policy (excerpt)"))
    tools = ", ".join(t["function"]["name"] + ("*" if _is_write(domain, t) else "") for t in obs.tools)
    console.print(Panel(tools + "\n[dim]* writes state[/dim]", title=f"{len(obs.tools)} tools"))
    gold = getattr(domain, "gold_turns", None)
    if gold is None:
        console.print("[yellow]this domain has no gold_turns hook: no gold trajectory to show[/yellow]")
        return 0
    for text in gold(task):
        result = env.step(text)
        console.print(Text.assemble(("assistant ", "bold cyan"), text))
        for m in result.messages:
            console.print(Text.assemble((f"  tool {m.name}: ", "green"), m.content))
        if result.done:
            verdict = result.info.get("verifier", {})
            console.print(f"[bold]reward {result.reward}[/bold] ({result.info.get('reason')}) {verdict}")
            break
    return 0


def _hash(args: argparse.Namespace) -> int:
    import hashlib

    domain = load_domain(args.name, args.seed, args.option)
    tasks = _tasks(domain, args.split)
    gold = getattr(domain, "gold_turns", None)
    digest = hashlib.sha256()
    for t in tasks:
        row = [t.task_id, t.family, t.instruction, t.data.get("start_hash"), t.data.get("gold_hash")]
        row.append(gold(t) if gold else None)
        digest.update(json.dumps(row, sort_keys=True).encode())
    print(f"{args.name} {args.split} seed={args.seed}: {len(tasks)} tasks sha256 {digest.hexdigest()}")
    return 0


def _is_write(domain: Any, tool: dict[str, Any]) -> bool:
    hook = getattr(domain, "is_write_tool", None)
    return bool(hook and hook(tool["function"]["name"]))


def _stats(args: argparse.Namespace) -> int:
    from sgcd.eval import evaluate, make_runner

    domain = load_domain(args.name, args.seed, args.option)
    tasks = _tasks(domain, args.split)[: args.limit] if args.limit else _tasks(domain, args.split)
    try:
        levels = [float(x) for x in args.noise.split(",") if x.strip()]
    except ValueError as exc:
        raise CliError(f"--noise {args.noise!r}: comma-separated probabilities expected") from exc
    specs = ["scripted:gold", "scripted:read-only"] + [f"scripted:noisy:{p}" for p in levels]
    success: dict[str, dict[str, float]] = {}
    for spec in specs:
        try:
            result = evaluate(make_runner(spec, domain), domain, args.split, limit=len(tasks), progress=False)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        success[spec] = {fam: row["success"] for fam, row in result.per_family.items()}
        success[spec]["all"] = result.success_rate
    horizon = {t.task_id: _horizon(domain, t) for t in tasks}
    _print_tables(args, tasks, horizon, specs, success)
    prompt = prompt_tokens(domain, tasks, args.model)
    print(_prompt_line(prompt))
    if args.json_out:
        _write_stats_json(args, tasks, horizon, success, prompt)
    return 0


def prompt_tokens(domain: Any, tasks: list[Any], model: str | None = None) -> dict[str, Any]:
    """Opening-prompt length per task, tokenized exactly as HFPolicy.encode_prompt does for `model`.

    Only the tokenizer is loaded (from the resolved model folder; the default model is converted once into the
    sgcd cache on first use). Returns {model, mean, min, max} or {model, error} when the model is unavailable.
    """
    from sgcd.policy.models import DEFAULT_MODEL

    spec = model or DEFAULT_MODEL
    if spec == "none":
        return {"model": None}
    try:
        from transformers import AutoTokenizer

        from sgcd.policy.chat import ChatCodec
        from sgcd.policy.models import resolve_model

        codec = ChatCodec(AutoTokenizer.from_pretrained(resolve_model(spec)))
    except (FileNotFoundError, OSError, ValueError, ImportError) as exc:
        return {"model": spec, "error": f"{type(exc).__name__}: {exc}"[:300]}
    counts = []
    for task in tasks:
        opening = domain.make_env(task).reset()
        counts.append(len(codec.encode_prompt(opening.messages, opening.tools)))
    if not counts:
        return {"model": spec}
    return {"model": spec, "mean": sum(counts) / len(counts), "min": min(counts), "max": max(counts)}


def _prompt_line(prompt: dict[str, Any]) -> str:
    if "mean" in prompt:
        return (
            f"opening prompt ({prompt['model']} tokens): mean {prompt['mean']:.1f}, "
            f"min {prompt['min']}, max {prompt['max']}"
        )
    if "error" in prompt:
        return f"opening prompt tokens: not measured ({prompt['error']})"
    return "opening prompt tokens: not measured"


def _write_stats_json(args, tasks, horizon, success, prompt) -> None:
    from pathlib import Path

    families = sorted({t.family for t in tasks})
    out = {
        "env": args.name,
        "split": args.split,
        "seed": args.seed,
        "tasks": len(tasks),
        "tasks_per_family": {f: sum(t.family == f for t in tasks) for f in families},
        "horizon": {str(h): n for h, n in sorted(Counter(horizon.values()).items())},
        "success": success,
        "prompt_tokens": prompt.get("mean"),
        "prompt_tokens_min": prompt.get("min"),
        "prompt_tokens_max": prompt.get("max"),
        "prompt_model": prompt.get("model"),
    }
    if "error" in prompt:
        out["prompt_error"] = prompt["error"]
    path = Path(args.json_out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


def _horizon(domain: Any, task: Any) -> int:
    if "horizon" in task.data:
        return int(task.data["horizon"])
    gold = getattr(domain, "gold_turns", None)
    return len(gold(task)) if gold else 0


def _print_tables(args, tasks, horizon, specs, success) -> None:
    families = sorted({t.family for t in tasks}) + ["all"]
    header = ["family", "tasks", "horizon (min-max, mean)"] + [s.removeprefix("scripted:") for s in specs]
    rows = []
    for fam in families:
        hs = [horizon[t.task_id] for t in tasks if fam in ("all", t.family)]
        cells = [fam, str(len(hs)), f"{min(hs)}-{max(hs)}, {sum(hs) / len(hs):.1f}"]
        rows.append(cells + [f"{success[s].get(fam, 0.0):.2f}" for s in specs])
    dist = sorted(Counter(horizon.values()).items())
    title = f"{args.name} / {args.split}: {len(tasks)} tasks"
    if args.markdown:
        print(f"**{title}** (horizon = gold assistant turns: tool-call turns + the final answer)\n")
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print("\n| horizon | " + " | ".join(str(h) for h, _ in dist) + " |\n|---|" + "---|" * len(dist))
        print("| tasks | " + " | ".join(str(n) for _, n in dist) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    Console().print(table)
    Console().print("horizon distribution: " + ", ".join(f"{h}: {n}" for h, n in dist))

"""`sgcd eval --env NAME --policy SPEC --split SPLIT [--trials K] [--limit N] [--json OUT]`: run a policy over
a split with the domain's verifier, print a table (success, per-family success, mean turns, tool errors,
pass^k, tool-use health) and optionally write it all as JSON.

Policies: scripted:gold | scripted:noisy:P | scripted:read-only | replay:FILE | openai:MODEL | a model spec
(smollm2-135m, tiny, hf:PATH, a local folder). Model flags (--base-url, --temperature, ...) pass through.
"""

from __future__ import annotations

import argparse
from typing import Any

from sgcd.cli import CliError
from sgcd.commands.env import add_option_argument, load_domain


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a policy on an environment split", description=__doc__)
    p.add_argument(
        "--env", default="airline-lite", help="environment name (see `sgcd env list`; default airline-lite)"
    )
    p.add_argument(
        "--policy", required=True, help="policy spec, e.g. scripted:gold, openai:MODEL, smollm2-135m"
    )
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--trials", type=int, default=1, help="attempts per task; pass^k for k=1..trials")
    p.add_argument("--limit", type=int, default=None, help="only the first N tasks (N >= 1; default all)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the full result (with records) here")
    p.add_argument("--seed", type=int, default=0, help="domain seed and scripted-noise seed (default 0)")
    add_option_argument(p)
    p.add_argument(
        "--user",
        default=None,
        help="simulated user (tau3-airline): scripted | openai:MODEL (= --option user=...)",
    )
    p.add_argument("--user-base-url", default=None, help="the LLM user's OpenAI-compatible endpoint")
    p.add_argument("--batch-size", type=int, default=32, help="envs handed to the runner at once")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("model policies")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (openai:MODEL)")
    g.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling p")
    g.add_argument("--max-new-tokens", type=int, default=None, help="tokens per assistant turn")
    g.add_argument("--device", default=None, help="cpu | cuda (model specs)")
    g.add_argument(
        "--pause-share",
        type=float,
        default=None,
        help="model specs: continuous batching; a round hands back its unfinished turns once fewer than this "
        "share of its rows are still sampling (default 0.5; 0 = each round waits for its longest turn)",
    )
    g.add_argument(
        "--tool-mode", default=None, choices=["native", "text"], help="openai: native tools or text"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from sgcd.eval import evaluate, make_runner

    if args.trials < 1:
        raise CliError(f"--trials must be >= 1, got {args.trials}")
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit} (leave it out to evaluate every task)")
    options = list(args.option)
    options += [f"user={args.user}"] if args.user else []
    options += [f"user_base_url={args.user_base_url}"] if args.user_base_url else []
    domain = load_domain(args.env, args.seed, options)
    opts = {
        "seed": args.seed,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "device": args.device,
        "tool_mode": args.tool_mode,
    }
    if not args.policy.startswith(("scripted:", "replay:", "openai:")):
        opts["batch_size"] = args.batch_size
        opts["pause_share"] = args.pause_share
    elif args.pause_share is not None:
        raise CliError("--pause-share applies to model policies only (it batches their generation)")
    if args.pause_share is not None and not 0.0 <= args.pause_share <= 1.0:
        raise CliError(f"--pause-share must be in [0, 1], got {args.pause_share}")
    from sgcd.policy.base import EndpointError

    try:
        runner = make_runner(args.policy, domain, **opts)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # a damaged model folder: safetensors, tokenizers and json raise their own kinds
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise CliError(f"cannot load the policy {args.policy!r}: {type(exc).__name__}: {first}") from exc
    try:
        result = evaluate(
            runner, domain, args.split, trials=args.trials, limit=args.limit,
            progress=not args.no_progress, batch_size=args.batch_size, policy=args.policy,
        )  # fmt: skip
    except EndpointError as exc:  # the server, not the tasks: no score is printed
        raise CliError(f"{args.policy}: {str(exc).splitlines()[0]} (no task was scored)") from exc
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    print_result(result)
    if args.json:
        try:
            result.write_json(args.json)
        except OSError as exc:
            raise CliError(f"--json {args.json}: cannot write it ({exc.strerror or exc})") from None
        print(f"wrote {args.json}")
    return 0


def print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(
        title=f"{result.policy} on {result.domain}/{result.split}: {result.n_tasks} tasks x {result.trials}"
    )
    for col in (
        "success",
        "mean turns",
        "tool errors",
        "format errors",
        *(f"pass^{k}" for k in result.pass_k),
    ):
        head.add_column(col)
    head.add_row(
        f"{result.success_rate:.3f}", f"{result.mean_turns:.2f}", str(result.tool_errors),
        str(result.format_errors), *(f"{v:.3f}" for v in result.pass_k.values()),
    )  # fmt: skip
    console.print(head)
    fam = Table(title="per family")
    for col in ("family", "attempts", "success", "mean turns"):
        fam.add_column(col)
    for name, row in result.per_family.items():
        fam.add_row(name, str(int(row["n"])), f"{row['success']:.3f}", f"{row['mean_turns']:.2f}")
    console.print(fam)
    console.print("tool-use health: " + ", ".join(f"{k} {v:.3f}" for k, v in result.health.items()))
    if result.extra:
        console.print(
            f"{result.domain} metrics: " + ", ".join(f"{k} {v:.1f}" for k, v in result.extra.items())
        )

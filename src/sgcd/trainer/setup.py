"""Building a run's parts from its config: models (with the cached SFT warm start), optimizer and schedule,
summarizer (with a pre-flight check of an LLM endpoint), and held-out evaluation through `sgcd.eval`.

Evaluation runs the policy on the clean prompt with a `PolicyRunner`, greedy by default; it saves and restores
the policy's sampling generator so evaluating never changes the training rollouts (resume stays exact).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from sgcd.trainer.config import RunConfig


class TrainError(RuntimeError):
    """A run cannot start or continue; one line saying why (the command prints it without a traceback)."""


def wants_sft(cfg: RunConfig) -> bool:
    mode = cfg.model.sft_warmstart
    return mode == "on" or (mode == "auto" and cfg.model.name == "smollm2-135m")


def load_models(cfg: RunConfig) -> tuple[Any, Any, Path]:
    """(policy, reference view or None, the folder the policy was loaded from).

    The policy is set up for training as configured (model.train_layers, model.lora_*; float32 master weights,
    model.autocast for compute). The reference (kl_beta > 0 or credit.teacher=reference) is the *same* model
    seen through `HFPolicy.reference()` (adapters disabled, or the trained tensors' saved initial values): one
    model in memory, never a second copy."""
    from sgcd.policy.models import load_policy, resolve_model
    from sgcd.policy.trainable import TrainableError, make_trainable

    m = cfg.model
    try:
        if wants_sft(cfg):
            from sgcd.trainer.sft import SFTConfig, ensure_sft_model

            budget = SFTConfig(
                steps=m.sft_budget,
                lr=m.sft_lr,
                reference=m.sft_reference,
                reference_share=m.sft_reference_share,
            )
            from sgcd.progress import on_terminal  # the warm start draws a rich bar: only on a terminal

            bar = cfg.logging.progress and on_terminal()
            path = Path(ensure_sft_model(m.name, cfg.env.name, budget, device=m.device, progress=bar))
        else:
            path = resolve_model(m.name)
        policy = load_policy(str(path), device=m.device, dtype=m.dtype, seed=cfg.seed)
    except FileNotFoundError as exc:
        raise TrainError(f"model.name={m.name!r}: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:
        raise TrainError(f"model.name={m.name!r} cannot be loaded: {str(exc).splitlines()[0]}") from exc
    policy.set_autocast(m.autocast)
    try:
        make_trainable(
            policy,
            lora_rank=m.lora_rank,
            lora_alpha=m.lora_alpha,
            lora_targets=m.lora_targets,
            train_layers=m.train_layers,
            grad_checkpoint=m.grad_checkpoint,
        )
    except TrainableError as exc:
        raise TrainError(str(exc)) from exc
    ref = None
    if cfg.needs_reference_model:
        policy.keep_reference()
        ref = ReferenceView(policy)
    return policy, ref, path


class ReferenceView:
    """The frozen initial model as a scorer: `score` runs the policy inside `policy.reference()`."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def score(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.reference():
            return self.policy.score(*args, **kwargs)


def make_optimizer(cfg: RunConfig, model: torch.nn.Module):
    """AdamW and a LambdaLR schedule (linear warm-up, then constant / cosine / linear decay over cfg.steps)."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    total, warm = max(cfg.steps, 1), o.warmup_steps

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if o.schedule == "constant":
            return 1.0
        frac = min(max(step - warm, 0) / max(total - warm, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * frac)) if o.schedule == "cosine" else 1.0 - frac

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler


def check_summarizer_endpoint(cfg: RunConfig, timeout_s: float = 5.0) -> None:
    """For summarizer.kind=llm: fail fast, before any run folder is written, if the endpoint does not answer."""
    s = cfg.summarizer
    if s.kind != "llm" or not cfg.algorithm_spec.needs_references:
        return
    import urllib.error
    import urllib.request

    url = s.base_url.rstrip("/") + "/models"
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()  # noqa: S310 - user-given endpoint
    except urllib.error.HTTPError:
        return  # it answered (401/404 are the server's business, the summarizer handles them)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrainError(
            f"summarizer.base_url={s.base_url!r} is unreachable ({reason}); start the server, fix the URL, or use "
            f"summarizer.kind=offline"
        ) from exc


class FallbackWatch:
    """Counts the LLM summarizer's fallbacks to offline references over a run (from the step metrics
    `reference/references`, `reference/fallbacks`, `reference/fallback/<cause>`). When their share passes
    summarizer.max_fallback_rate it prints one warning on stderr, or with summarizer.strict=true raises TrainError:
    an endpoint that always fails (a 401, say) must not silently turn an LLM-reference run into an offline one."""

    MIN_REFERENCES = 4  # a single unlucky parse failure at step 1 is not a broken summarizer

    def __init__(self, cfg: RunConfig) -> None:
        s = cfg.summarizer
        self.active = s.kind == "llm"
        self.limit, self.strict, self.where = s.max_fallback_rate, s.strict, f"{s.model!r} at {s.base_url}"
        self.references, self.fallbacks, self.causes = 0.0, 0.0, Counter()
        self.warned = False

    def update(self, metrics: dict[str, float], final: bool = False) -> None:
        if not self.active:
            return
        self.references += metrics.get("reference/references", 0.0)
        self.fallbacks += metrics.get("reference/fallbacks", 0.0)
        for key, value in metrics.items():
            if key.startswith("reference/fallback/"):
                self.causes[key.removeprefix("reference/fallback/")] += value
        enough = self.references >= self.MIN_REFERENCES or (final and self.references > 0)
        if self.warned or not enough or self.fallbacks / self.references <= self.limit:
            return
        causes = ", ".join(f"{k} {v:.0f}" for k, v in self.causes.most_common()) or "unknown"
        msg = (
            f"the LLM summarizer ({self.where}) fell back to offline references for {self.fallbacks:.0f} of "
            f"{self.references:.0f} groups ({self.fallbacks / self.references:.0%}, above "
            f"summarizer.max_fallback_rate={self.limit:g}; causes: {causes})"
        )
        if self.strict:
            raise TrainError(f"{msg}; stopping because summarizer.strict=true")
        self.warned = True
        print(
            f"warning: {msg}; the run goes on with offline references (summarizer.strict=true stops it instead)",
            file=sys.stderr,
            flush=True,
        )


def make_summarizer_for(cfg: RunConfig, run_dir: Path) -> tuple[Any, str]:
    """(summarizer or None when no teacher is used, its cache folder)."""
    from sgcd.trainer.loop.teacher import needs_references

    s = cfg.summarizer
    cache = s.cache_dir or str(Path(run_dir) / "summarizer_cache")
    if not needs_references(cfg):
        return None, cache
    from sgcd.credit_reference import make_summarizer

    if s.kind == "offline":
        return make_summarizer("offline"), cache
    summarizer = make_summarizer(
        f"openai:{s.model}",
        base_url=s.base_url,
        api_key_env=s.api_key_env,
        timeout=s.timeout_s,
        retries=s.max_retries,
        max_requests=s.max_requests,
        cache_dir=cache,
        max_concurrency=s.max_concurrency,
        seed=cfg.seed,
    )
    return summarizer, cache


def evaluate_policy(
    policy: Any, domain: Any, cfg: RunConfig, tasks_out: dict[str, float] | None = None
) -> dict[str, float]:
    """Held-out success and tool-use health on cfg.env.eval_split through sgcd.eval.evaluate (clean prompt).

    tasks_out, when given, receives each task's success rate (for paired before/after statistics)."""
    from sgcd.eval import evaluate
    from sgcd.policy.base import SamplingParams
    from sgcd.rollout import PolicyRunner, RolloutLimits

    e, s = cfg.eval, cfg.sampling
    runner = PolicyRunner(
        policy=policy,
        sampling=SamplingParams(temperature=e.temperature, top_p=1.0, max_new_tokens=s.max_new_tokens),
        limits=RolloutLimits(
            max_turns=s.max_turns, max_tokens=s.max_tokens, batch_size=e.batch_size, pause_share=s.pause_share
        ),
    )
    gen_state = policy.generator.get_state()
    was_training = policy.model.training
    policy.model.eval()
    try:
        with torch.no_grad():
            report = evaluate(
                runner,
                domain,
                cfg.env.eval_split,
                trials=e.trials,
                limit=e.limit or None,
                progress=cfg.logging.progress,
                batch_size=e.batch_size,
                policy=cfg.model.name,
            )
    finally:
        policy.generator.set_state(gen_state)
        policy.model.train(was_training)
    if tasks_out is not None:
        tasks_out.update(report.per_task())
    return eval_metrics(report)


def eval_metrics(result: Any) -> dict[str, float]:
    """An EvalResult as flat floats: success, n, mean_turns, error counts, pass^k, and the health figures."""
    out = {
        "success": float(result.success_rate),
        "n": float(len(result.records)),
        "n_tasks": float(result.n_tasks),
        "mean_turns": float(result.mean_turns),
        "tool_errors": float(result.tool_errors),
        "format_errors": float(result.format_errors),
    }
    out.update({f"pass^{k}": float(v) for k, v in result.pass_k.items()})
    out.update({k: float(v) for k, v in result.health.items()})
    for name, row in getattr(result, "per_horizon", {}).items():
        out[f"horizon_{name}/success"] = float(row["success"])
        out[f"horizon_{name}/n"] = float(row["n"])
        out[f"horizon_{name}/write_share"] = float(row["write_share"])
    return out

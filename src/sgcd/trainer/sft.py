"""Supervised warm-start on gold trajectories, so a small model emits well-formed tool calls before RL.

Examples are built by the rollout code itself: a scripted policy "samples" the domain's gold turns
(`domain.gold_turns(task)`, each tokenized alone + the end-of-turn token) against the real environment, so
prompt ids, observation deltas and the action mask are exactly what RL rollouts record. Loss: token-mean
cross-entropy on action tokens only (mask 1), AdamW, linear warm-up then linear decay, gradient clipping.

Departures from plain full fine-tuning, all for CPU speed (a few minutes on 2 cores):
- Only the top `train_layers` decoder blocks (+ final norm) are trained; the frozen blocks build no autograd
  graph, so their backward pass is skipped.
- Every airline-lite prompt opens with the same ~1.2k-token system prompt (policy + tool schemas). Its
  keys/values are computed under no_grad, shared by the batch and refreshed every `prefix_refresh` steps, so
  the gradient does not flow into how the model encodes that fixed system prompt, and between refreshes the
  top blocks see slightly stale prefix keys/values (the tokens after it are trained exactly).
- Only the action tokens' hidden states go through the LM head (no (T, V) logits for observation tokens).

With `SFTConfig.reference` (`model.sft_reference`, our addition, not in the paper) a share of the steps trains on
*reference-reading* examples instead: the RL teacher's prompt (a credit reference built by the offline
summarizer from scripted sibling attempts, in the system message) followed by the successful sibling's turns,
so the teacher learns to follow a reference while the clean-prompt steps keep training the student. See
`sgcd.trainer.sft_reference` and docs/training.md.

`ensure_sft_model(model, env, config)` caches the result under $SGCD_CACHE/sft, keyed by (model, env, config,
SFT_VERSION), built atomically under a file lock, so the trainer's default run pays for it once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from sgcd.policy.base import SamplingParams
from sgcd.trainer.gold import gold_trajectories
from sgcd.types import Trajectory

# Bump when the recipe or the prompts it trains on change, so cached warm-starts are rebuilt (the cache key does
# not hash the prompt). 2: airline-lite's compact opening prompt (policy text + compact tool block).
SFT_VERSION = "2"


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 40  # optimizer steps
    batch_size: int = 4  # gold trajectories per step (distinct train tasks)
    lr: float = 3e-4  # peak learning rate (AdamW)
    warmup: int = 4  # linear warm-up steps
    max_tokens: int = 512  # skip gold trajectories longer than this (after the prompt)
    grad_clip: float = 1.0
    seed: int = 0
    train_layers: int = 12  # train only the top N transformer blocks + final norm (0 = every parameter)
    prefix_refresh: int = 8  # recompute the shared system-prompt keys/values every N steps
    lora_rank: int = 0  # > 0: train peft LoRA adapters of this rank (in the top train_layers blocks) instead
    lora_alpha: float = 16.0
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj"
    reference: bool = False  # also train reference-reading examples (sgcd.trainer.sft_reference)
    reference_share: float = 0.5  # with reference: share of optimizer steps on reference batches


def _batch(trajs: list[Trajectory], P: int, device: Any) -> tuple[torch.Tensor, ...]:
    """Right-padded ids after the shared prefix, attention mask, and (row, position, target) of action tokens."""
    seqs = [list(t.prompt_ids[P:]) + list(t.token_ids) for t in trajs]
    S = max(len(s) for s in seqs)
    ids_B_S = torch.zeros((len(seqs), S), dtype=torch.long)
    attn_B_S = torch.zeros((len(seqs), S), dtype=torch.long)
    rows, cols, tgts = [], [], []
    for b, (s, t) in enumerate(zip(seqs, trajs)):
        ids_B_S[b, : len(s)] = torch.tensor(s)
        attn_B_S[b, : len(s)] = 1
        off = len(t.prompt_ids) - P
        for j, m in enumerate(t.action_mask):
            if m:  # token at off+j is predicted by the hidden state at off+j-1
                rows.append(b), cols.append(off + j - 1), tgts.append(t.token_ids[j])
    as_t = lambda x: torch.tensor(x, dtype=torch.long, device=device)  # noqa: E731
    return ids_B_S.to(device), attn_B_S.to(device), as_t(rows), as_t(cols), as_t(tgts)


def sft_loss(policy: Any, trajs: list[Trajectory], P: int, prefix_cache: Any) -> torch.Tensor:
    """Token-mean cross-entropy over the action tokens of `trajs`, after a shared prefix of P tokens."""
    ids_B_S, attn_B_S, rows, cols, tgts = _batch(trajs, P, policy.device)
    B, S = ids_B_S.shape
    kwargs = {}
    if P:
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(B)
        kwargs[policy._cache_kw] = cache
    attn = torch.cat([attn_B_S.new_ones((B, P)), attn_B_S], dim=1)
    pos_B_S = (P + torch.arange(S, device=ids_B_S.device))[None].expand(B, S)
    body = policy.body()
    hidden_B_S_H = body(
        input_ids=ids_B_S, attention_mask=attn, position_ids=pos_B_S, use_cache=bool(P), **kwargs
    ).last_hidden_state
    logits_N_V = policy._head(hidden_B_S_H[rows, cols])
    return torch.nn.functional.cross_entropy(logits_N_V, tgts)


def _shared_prefix(trajs: list[Trajectory]) -> int:
    first = trajs[0].prompt_ids
    n = min(len(t.prompt_ids) for t in trajs) - 1
    for t in trajs[1:]:
        n = next((i for i in range(n) if t.prompt_ids[i] != first[i]), n)
    return n


def reference_steps(steps: int, share: float) -> list[bool]:
    """Which optimizer steps train on reference examples: step i does when floor((i + 1) * share) grows, so
    every stretch of steps holds `share` of them, spread evenly (share 0.5: the 2nd, 4th, ... step)."""
    return [math.floor((i + 1) * share) > math.floor(i * share) for i in range(steps)]


def train(
    policy: Any,
    trajs: list[Trajectory],
    config: SFTConfig,
    progress: bool = True,
    ref_trajs: list[Trajectory] | None = None,
) -> list[float]:
    """Optimise policy.model on `trajs` (config.batch_size per step, cycling); returns the loss per step.

    ref_trajs (examples whose prompt carries a credit reference): the steps `reference_steps` picks train on
    batches of these instead, each list cycled in its own order. A batch never mixes the two, so each kind keeps
    its own shared prefix (the clean batches exactly as without references) and padding stays short."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sgcd.policy.trainable import make_trainable, num_blocks
    from sgcd.progress import line, on_terminal

    make_trainable(  # the same freezing / adapters as `sgcd train` (sgcd.policy.trainable)
        policy,
        lora_rank=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_targets=config.lora_targets,
        train_layers=min(config.train_layers, num_blocks(policy)),  # a smaller model trains all its blocks
    )
    policy.trunk_blocks = 0  # sft_loss runs the body itself, with a shared-prefix cache
    model = policy.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0)

    def lr_at(step: int) -> float:  # linear warm-up, then linear decay to 10% of the peak
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 1.0 - 0.9 * frac

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    pools = [trajs] + ([ref_trajs] if ref_trajs else [])
    on_ref = reference_steps(config.steps, config.reference_share) if ref_trajs else [False] * config.steps
    prefixes = [_shared_prefix(pool) for pool in pools]  # per pool: shared prefix length
    caches: list[Any] = [None] * len(pools)
    drawn = [0] * len(pools)  # examples drawn from each pool so far
    body = policy.body()
    losses: list[float] = []
    columns = [
        TextColumn("sft"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    bar_on = progress and on_terminal()
    with Progress(*columns, disable=not bar_on) as bar:
        job = bar.add_task("sft", total=config.steps, loss="-")
        for step in range(config.steps):
            if step % config.prefix_refresh == 0:
                caches = [None] * len(pools)  # stale: recomputed when next used
            i = int(on_ref[step])
            pool, P = pools[i], prefixes[i]
            batch = [pool[(drawn[i] + k) % len(pool)] for k in range(config.batch_size)]
            drawn[i] += config.batch_size
            if P and caches[i] is None:
                with torch.no_grad():
                    prefix = torch.tensor([list(pool[0].prompt_ids[:P])], device=policy.device)
                    caches[i] = body(input_ids=prefix, use_cache=True)[policy._cache_kw]
            loss = sft_loss(policy, batch, P, caches[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(job, advance=1, loss=f"{loss.item():.3f}")
            if progress and not bar_on:  # off a terminal: one line per step instead of a bar
                line(f"sft step {step + 1}/{config.steps}  loss {loss.item():.3f}")
    model.eval()
    if config.lora_rank > 0:  # the warm start is a plain model: fold the adapters in
        policy.model = model.merge_and_unload()
    policy.model.requires_grad_(True)
    if any(not math.isfinite(x) for x in losses):
        raise RuntimeError(f"sft diverged (non-finite loss); losses: {losses[-5:]}; lower --lr")
    return losses


def sft(
    policy_spec: str,
    domain: str | Any,
    split: str = "train",
    config: SFTConfig = SFTConfig(),
    out: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Warm-start `policy_spec` on gold trajectories of `domain`'s split; save the HF folder to `out`."""
    from sgcd.envs import get_domain
    from sgcd.policy.models import load_policy

    dom = get_domain(domain) if isinstance(domain, str) else domain
    if not hasattr(dom, "gold_turns"):
        raise ValueError(f"environment {getattr(dom, 'name', domain)!r} has no gold_turns(task) hook for SFT")
    torch.manual_seed(config.seed)
    policy = load_policy(policy_spec, device=device)
    need = config.steps * config.batch_size
    tasks = dom.tasks(split)[: max(need, 1)]
    t0 = time.time()
    trajs = gold_trajectories(policy, dom, tasks, config.max_tokens)
    if not trajs:
        raise RuntimeError(f"no usable gold trajectories in {split!r} (all failed or exceeded max_tokens)")
    ref = None
    if config.reference:
        from sgcd.trainer.sft_reference import reference_examples

        ref = reference_examples(policy, dom, tasks, config.max_tokens, seed=config.seed)
        if not ref.examples:
            raise RuntimeError(
                f"sft reference=true: no task of {split!r} gave a scripted sibling group with a failure"
            )
    losses = train(policy, trajs, config, progress, ref.examples if ref else None)
    out = (
        Path(out)
        if out
        else Path("runs") / f"sft-{Path(str(policy_spec)).name}-{getattr(dom, 'name', 'env')}"
    )
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
    meta = {
        "model": policy_spec,
        "env": getattr(dom, "name", str(domain)),
        "split": split,
        "config": asdict(config),
        "examples": len(trajs),
        "tasks_tried": len(tasks),
        "action_tokens": sum(sum(t.action_mask) for t in trajs),
        "losses": losses,
        "seconds": round(time.time() - t0, 1),
        "sft_version": SFT_VERSION,
    }
    if ref is not None:
        steps = reference_steps(config.steps, config.reference_share)
        meta["reference"] = {
            "examples": len(ref.examples),
            "groups": len(ref.groups),
            "steps": sum(steps),
            "clean_steps": config.steps - sum(steps),
            "action_tokens": sum(sum(t.action_mask) for t in ref.examples),
            "prompt_tokens_mean": round(sum(len(t.prompt_ids) for t in ref.examples) / len(ref.examples), 1),
            "clean_prompt_tokens_mean": round(sum(len(t.prompt_ids) for t in trajs) / len(trajs), 1),
            "counts": dict(sorted(ref.stats.items())),
        }
    (out / "sft.json").write_text(json.dumps(meta, indent=1))
    return out


def sft_cache_key(model_spec: str, env_name: str, config: SFTConfig) -> str:
    fields = asdict(config)
    if not config.lora_rank:  # LoRA off: the key of the recipe before LoRA existed, so caches stay valid
        for name in ("lora_rank", "lora_alpha", "lora_targets"):
            fields.pop(name)
    if not config.reference:  # references off: the key from before they existed (the share is then unused)
        for name in ("reference", "reference_share"):
            fields.pop(name)
    else:
        from sgcd.trainer.sft_reference import REFERENCE_VERSION

        fields["reference_version"] = REFERENCE_VERSION
    blob = json.dumps([model_spec, env_name, fields, SFT_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_sft_model(
    model_spec: str,
    env_name: str,
    budget: SFTConfig | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The warm-started model for (model, env, budget), trained once and cached under $SGCD_CACHE/sft."""
    from filelock import FileLock

    from sgcd.policy.models import cache_dir

    config = budget or SFTConfig()
    root = cache_dir() / "sft"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{Path(model_spec).name}-{env_name}-{sft_cache_key(model_spec, env_name, config)}"
    target = root / name
    if (target / "sft.json").exists():
        return target
    with FileLock(str(root / f"{name}.lock")):
        if (target / "sft.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            sft(model_spec, env_name, config=config, out=tmp, device=device, progress=progress)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def turn_health(policy: Any, trajs: list[Trajectory]) -> dict[str, float]:
    """Share of sampled assistant turns that are well-formed: ended by the model's own end-of-turn token, and
    either a final answer (no tool markup) or tool calls that all parse as `{"name", "arguments"}` JSON.
    Also: share of parsed calls the tools rejected (unknown tool, bad arguments, refused), and success."""
    from sgcd.envs.toolcalls import has_tool_markup, parse_tool_calls

    turns = good = finals = 0
    for t in trajs:
        by_turn: dict[int, list[int]] = {}
        for tok, k in zip(t.token_ids, t.turn_ids):
            if k >= 0:
                by_turn.setdefault(k, []).append(tok)
        for ids in by_turn.values():
            turns += 1
            if ids[-1] != policy.eot_id:
                continue  # cut at max_new_tokens / the token budget: not well-formed
            text = policy.decode(ids[:-1])
            if not has_tool_markup(text):
                good, finals = good + 1, finals + 1
            else:
                parsed, errors = parse_tool_calls(text)
                good += bool(parsed) and not errors
    calls = [c for t in trajs for step in t.episode.steps for c in step.calls]
    n = max(1, len(trajs))
    return {
        "episodes": len(trajs),
        "turns": turns,
        "well_formed": good / max(1, turns),
        "final_turns": finals / max(1, turns),
        "tool_reject_rate": sum(c.error for c in calls) / max(1, len(calls)),
        "success": sum(t.success for t in trajs) / n,
        "turns_per_episode": turns / n,
        "truncated": sum(t.truncated for t in trajs) / n,
    }


def evaluate(
    policy: Any,
    domain: Any,
    split: str = "test",
    n_tasks: int = 40,
    params: SamplingParams = SamplingParams(temperature=1.0, max_new_tokens=160),
    seed: int = 0,
):
    """Sample one episode per task on the first n_tasks of `split` (all batched); returns turn_health()."""
    from sgcd.rollout import RolloutLimits, run_batch

    tasks = domain.tasks(split)[:n_tasks]
    policy.seed(seed)
    limits = RolloutLimits(max_turns=12, max_tokens=3072)
    trajs = run_batch(policy, [domain.make_env(t) for t in tasks], params, limits)
    return turn_health(policy, trajs)

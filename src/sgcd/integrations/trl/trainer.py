"""`SGCDGRPOTrainer`: TRL's GRPOTrainer with SGCD's token advantages, and the pure function that computes them.

The subclass keeps everything TRL does (data loading, generation-batch buffering, shuffling, the PPO-style
loss, accelerate/DeepSpeed/FSDP wrapping, logging) and changes two things:

1. Rollouts: `rollout_func` is an `SGCDRollout` (sgcd's multi-turn agent loop on an sgcd domain, env tokens
   masked through `env_mask` -> `tool_mask`, dynamic sampling by resample-then-mask; see rollout.py).
2. Advantages: after TRL's `_generate_and_score_completions` builds the batch, `sgcd_token_advantages`
   replaces its (B,) `advantages` by (B, T) token advantages Ahat = A_i * w_t * m_t from `sgcd.core`:
   the step's mixed groups are summarized by an sgcd summarizer (credit reference), the live model scores the
   identical trajectory tokens after the clean prompt (student) and after the teacher prefix (teacher, no grad),
   and `credit_weights` / `reshape_advantages` give the weights and token advantages. TRL's `_compute_loss`
   accepts (B, T) advantages as they are and masks with `completion_mask * tool_mask`.

Options: the `sgcd_*` fields of `SGCDConfig` (a GRPOConfig; config.py), passed as `args=`; the trainer reads them
as an `SGCDOptions` value (passing `sgcd=SGCDOptions(...)` with a plain GRPOConfig still works but is deprecated).
`advantage="trl"` (default) takes TRL's own (B,) advantages as A_i, so every TRL
advantage option (scale_rewards, multi-objective aggregation) still applies; `grpo` / `drgrpo` / `rloo` take
`sgcd.core`'s estimator over the environment rewards, as the reference trainer (sgcd train) does. TRL's GRPO
divides by (std + 1e-4), sgcd.core's by (std + 1e-6): the two differ in the fourth decimal on small groups.
`teacher="none"` sets w = 1 without consulting a teacher, so with `advantage="trl"` the update is exactly
TRL's GRPO update on the same batch (tested parameter for parameter).

Departures: student and teacher log-probs are computed with `HFPolicy.score` (untempered, as in the reference
trainer) on the unwrapped live model, not with TRL's tempered forward; they only drive the credit weights.
That forward needs whole parameters on each rank (DDP, ZeRO-1/2); ZeRO-3 / FSDP sharding is not supported.
"""

from __future__ import annotations

import json
import types
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer

from sgcd.integrations.trl.compat import check_trl
from sgcd.integrations.trl.options import SGCDOptions
from sgcd.integrations.trl.rollout import RolloutBatch, SGCDRollout, env_reward, task_dataset
from sgcd.policy.scoring import score_batch


@dataclass
class SGCDStep:
    """The SGCD quantities of one generation batch, rows in TRL's (pre-shuffle) order; all on CPU."""

    advantages_B: torch.Tensor  # A_i
    weights_B_T: torch.Tensor  # w
    token_advantages_B_T: torch.Tensor  # Ahat = A * w * m
    mask_B_T: torch.Tensor  # bool: completion_mask * tool_mask
    student_B_T: torch.Tensor | None = None
    teacher_B_T: torch.Tensor | None = None
    references: list[Any] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def _padded(rows: list[tuple[int, ...]], T: int, fill: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.full((len(rows), T), fill, dtype=dtype)
    for b, row in enumerate(rows):
        n = min(len(row), T)
        out[b, :n] = torch.tensor(row[:n], dtype=dtype)
    return out


def sgcd_token_advantages(
    policy: Any,
    batch: RolloutBatch,
    mask_B_T: torch.Tensor,
    options: SGCDOptions,
    *,
    trl_advantages_B: torch.Tensor | None = None,
    summarizer: Any = None,
) -> SGCDStep:
    """Token advantages (B, T) for a rollout batch, composed from sgcd.core (no second copy of the math).

    policy: the live HFPolicy (scores student and teacher, and encodes teacher prefixes). mask_B_T: the tokens
    TRL's loss uses (completion_mask * tool_mask), T = TRL's padded completion length. trl_advantages_B: TRL's
    A_i, needed when options.advantage == "trl". summarizer: needed when options.teacher != "none".
    """
    trajs = batch.trajectories
    mask = mask_B_T.detach().bool().cpu()
    B, T = mask.shape
    if len(trajs) != B:
        raise ValueError(f"sgcd_token_advantages: {len(trajs)} trajectories but TRL's batch has {B} rows")
    if options.advantage == "trl":
        if trl_advantages_B is None:
            raise ValueError("sgcd_token_advantages: advantage='trl' needs trl_advantages_B")
    if options.teacher == "none":
        return token_advantages_from_scores(
            batch, mask, options, None, None, trl_advantages_B=trl_advantages_B
        )
    refs = _references(summarizer, batch, options)
    continuations = [list(t.token_ids) for t in trajs]
    micro = options.score_microbatch
    with eval_mode(policy.model):  # TRL trains in train mode: dropout would make w noise
        student = score_batch(policy, [list(t.prompt_ids) for t in trajs], continuations, T, micro)
        teacher = score_batch(
            policy,
            _teacher_rows(policy, batch, refs),
            continuations,
            T,
            micro,
            with_entropy=options.entropy_gate,
        )
    step = token_advantages_from_scores(
        batch, mask, options, student.logprobs_B_T, teacher.logprobs_B_T,
        teacher_entropy_B_T=teacher.entropy_B_T, trl_advantages_B=trl_advantages_B,
    )  # fmt: skip
    step.references = refs
    return step


def token_advantages_from_scores(
    batch: RolloutBatch,
    mask_B_T: torch.Tensor,
    options: SGCDOptions,
    student_B_T: torch.Tensor | None,
    teacher_B_T: torch.Tensor | None,
    *,
    teacher_entropy_B_T: torch.Tensor | None = None,
    trl_advantages_B: torch.Tensor | None = None,
) -> SGCDStep:
    """The translation from TRL's batch to `sgcd.algorithm`: A_i (TRL's, or sgcd.core's estimator over the env
    rewards), the trajectories' turn ids padded to TRL's T, then Algorithm.token_advantages (the call the
    reference trainer and verl make). teacher_B_T None: w = 1."""
    trajs = batch.trajectories
    mask = mask_B_T.detach().bool().cpu()
    B, T = mask.shape
    alg = options.algorithm
    if options.advantage == "trl":
        adv_B, metrics = trl_advantages_B.detach().float().cpu(), {}
    else:
        gid_B = torch.tensor(
            [k for k, g in enumerate(batch.groups) for _ in g.trajectories], dtype=torch.long
        )
        rewards_B = torch.tensor([t.reward for t in trajs], dtype=torch.float32)
        adv_B, metrics = alg.advantages(rewards_B, gid_B)
    student = torch.zeros(B, T) if student_B_T is None else student_B_T
    turns_B_T = _padded([t.turn_ids for t in trajs], T, -1, torch.long)
    out = alg.token_advantages(adv_B, mask, student, teacher_B_T, turn_ids_B_T=turns_B_T,
                               teacher_entropy_B_T=teacher_entropy_B_T)  # fmt: skip
    metrics = {**metrics, **out.metrics}
    if teacher_B_T is not None:
        delta = (teacher_B_T - student)[mask]
        metrics["credit/teacher_minus_student_mean"] = float(delta.mean()) if delta.numel() else 0.0
    return SGCDStep(adv_B, out.weights_B_T, out.token_advantages_B_T, mask, student_B_T, teacher_B_T,
                    metrics=metrics)  # fmt: skip


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """`model` in eval mode (no dropout) inside the block, its previous mode restored after."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# Loss types whose normaliser counts rows (a mean over sequences, or rows x max length): a masked row (a group
# dynamic sampling could not make mixed) would still count there, so it is dropped before the loss.
ROW_NORMALISED_LOSSES = ("grpo", "sapo", "luspo", "dr_grpo")


def drop_masked_rows(inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` without the rows that have no loss token (completion_mask * tool_mask all 0); every per-row tensor
    is filtered (the same rule TRL's own splitting and shuffling apply). Unchanged when every row or no row has a
    loss token (the all-masked batch gives a zero loss and takes no optimizer step, see the trainer)."""
    mask = inputs["completion_mask"]
    if "tool_mask" in inputs:
        mask = mask * inputs["tool_mask"]
    keep_B = mask.bool().any(-1)
    if bool(keep_B.all()) or not bool(keep_B.any()):
        return inputs
    B = keep_B.shape[0]
    return {
        k: v[keep_B] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == B else v
        for k, v in inputs.items()
    }


def _gate_optimizer_step(optimizer: Any, skip: Any) -> None:
    """Make `optimizer.step` a no-op while `skip()` is true (a bound method, so torch's LR schedulers can wrap it)."""
    if getattr(optimizer, "_sgcd_gated", False):
        return
    inner = optimizer.step

    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        if skip():
            return None
        return inner(*args, **kwargs)

    optimizer.step = types.MethodType(step, optimizer)
    optimizer._sgcd_gated = True


def _references(summarizer: Any, batch: RolloutBatch, options: SGCDOptions) -> list[Any]:
    """One credit reference per group; None for groups the batch does not train on (not mixed)."""
    from sgcd.credit_reference import summarize_groups

    if summarizer is None:
        raise ValueError("sgcd_token_advantages: teacher='pi_old' needs a summarizer")
    G = [len(g.trajectories) for g in batch.groups]
    starts = [sum(G[:k]) for k in range(len(G))]
    live = [k for k, s in enumerate(starts) if bool(batch.kept_B[s]) and G[k] > 0]
    found = summarize_groups(summarizer, [batch.groups[k] for k in live], options.max_concurrency)
    refs: list[Any] = [None] * len(batch.groups)
    for k, ref in zip(live, found):
        refs[k] = ref
    return refs


def _teacher_rows(policy: Any, batch: RolloutBatch, refs: list[Any]) -> list[list[int]]:
    """Teacher prefix per row: [system + credit reference] + clean prompt; the clean prompt where ref is None."""
    from sgcd.credit_reference import teacher_inputs

    rows: list[list[int]] = []
    for group, ref in zip(batch.groups, refs):
        rows += teacher_inputs(policy, group, ref).prefixes
    return rows


def _options(sgcd: SGCDOptions | None, args: Any) -> SGCDOptions:
    """The trainer's SGCD options: from an SGCDConfig `args`, else the deprecated `sgcd=` (else the defaults)."""
    from sgcd.integrations.trl.config import SGCDConfig

    if isinstance(args, SGCDConfig):
        if sgcd is not None:
            raise ValueError(
                "SGCDGRPOTrainer: the SGCD options are the sgcd_* fields of args=SGCDConfig; do not also pass sgcd="
            )
        return args.sgcd_options()
    if sgcd is not None:
        warnings.warn(
            "SGCDGRPOTrainer(sgcd=SGCDOptions(...)) is deprecated: pass args=SGCDConfig(..., sgcd_teacher=...) so "
            "TrlParser, the saved training arguments and the trackers carry the SGCD options",
            DeprecationWarning,
            stacklevel=3,
        )
        return sgcd
    return SGCDOptions()


class SGCDGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose rollouts run on an sgcd domain and whose advantages are SGCD's (B, T) token advantages.

    SGCDGRPOTrainer(model, rollout=SGCDRollout(domain, ...), args=SGCDConfig(..., sgcd_teacher="pi_old")).
    reward_funcs defaults to the environment reward; train_dataset to `task_dataset(rollout.domain, split)`.
    Everything else is passed to GRPOTrainer unchanged (`rollout_func` is ours and may not be given).
    Deprecated: `sgcd=SGCDOptions(...)` next to a plain GRPOConfig (a warning; not together with SGCDConfig).
    """

    def __init__(
        self,
        model: Any,
        *,
        rollout: SGCDRollout,
        sgcd: SGCDOptions | None = None,
        reward_funcs: Any = None,
        train_dataset: Any = None,
        **kwargs: Any,
    ) -> None:
        check_trl(type(self))
        if "rollout_func" in kwargs:
            raise ValueError(
                "SGCDGRPOTrainer: rollout_func is the SGCDRollout passed as rollout=; do not pass one"
            )
        self.sgcd = _options(sgcd, kwargs.get("args"))
        self.sgcd_rollout = rollout
        self.sgcd_last: SGCDStep | None = None
        super().__init__(
            model,
            reward_funcs=reward_funcs if reward_funcs is not None else [env_reward],
            train_dataset=train_dataset
            if train_dataset is not None
            else task_dataset(rollout.domain, rollout.split),
            rollout_func=rollout,
            **kwargs,
        )
        self.sgcd_summarizer = None
        if self.sgcd.teacher != "none":
            from sgcd.credit_reference import make_summarizer

            self.sgcd_summarizer = make_summarizer(self.sgcd.summarizer, **self.sgcd.summarizer_options)

    def create_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        """TRL's optimizer, whose step is skipped for a generation batch with no loss token on any process (no
        mixed group found): a zero gradient would still move AdamW's moments and apply its weight decay."""
        optimizer = super().create_optimizer(*args, **kwargs)
        _gate_optimizer_step(optimizer, lambda: getattr(self, "_sgcd_skip_update", False))
        return optimizer

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
        """TRL's loss; for the row-normalised loss types, masked rows are dropped first so they do not count."""
        if self.loss_type in ROW_NORMALISED_LOSSES:
            inputs = drop_masked_rows(inputs)
        return super()._compute_loss(model, inputs)

    # In each checkpoint-N folder, one file per process: the refill sampler of rank r (seeded seed + 7919 r)
    # stands at its own position. Rank 0 (and a single process) keeps the historical name, so checkpoints
    # written before the per-rank files still resume.
    ROLLOUT_STATE = "sgcd_rollout.json"

    @classmethod
    def rollout_state_name(cls, rank: int) -> str:
        return cls.ROLLOUT_STATE if rank == 0 else f"sgcd_rollout_rank{rank}.json"

    def _process_index(self) -> int:
        return int(getattr(self.accelerator, "process_index", 0) or 0)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if folder.is_dir():  # every process writes its own file (as Trainer does with rng_state_{rank}.pth)
            rank = self._process_index()
            self.sgcd_rollout.bind_rank(rank)
            path = folder / self.rollout_state_name(rank)
            path.write_text(json.dumps(self.sgcd_rollout.state_dict()))

    def _load_rng_state(self, checkpoint: Any) -> None:
        """Called by Trainer.train(resume_from_checkpoint=...): each rank's sampler resumes where it stood."""
        super()._load_rng_state(checkpoint)
        if not checkpoint:
            return
        rank = self._process_index()
        path = Path(checkpoint) / self.rollout_state_name(rank)
        if not path.is_file():
            legacy = Path(checkpoint) / self.ROLLOUT_STATE
            if rank == 0 or not legacy.is_file():
                return
            warnings.warn(
                f"{checkpoint} holds no refill-sampler state for rank {rank} (written before per-rank files); "
                "this rank resumes at rank 0's position, with its own seed",
                stacklevel=2,
            )
            path = legacy
        self.sgcd_rollout.bind_rank(rank)
        self.sgcd_rollout.load_state_dict(json.loads(path.read_text()))

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        batch = self.sgcd_rollout.last
        if batch is None:
            raise RuntimeError("SGCDGRPOTrainer: the rollout recorded no batch (was rollout_func replaced?)")
        mask_B_T = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        step = sgcd_token_advantages(
            self.sgcd_rollout.policy(self),
            batch,
            mask_B_T,
            self.sgcd,
            trl_advantages_B=out["advantages"],
            summarizer=self.sgcd_summarizer,
        )
        adv = out["advantages"]
        out["advantages"] = step.token_advantages_B_T.to(device=adv.device, dtype=adv.dtype)
        mode = "train" if self.model.training else "eval"
        if mode == "train":  # no loss token on any process: the optimizer steps this batch feeds are skipped
            any_B = torch.tensor([float(step.mask_B_T.any())], device=self.accelerator.device)
            self._sgcd_skip_update = not bool(self.accelerator.gather(any_B).sum() > 0)
            batch.metrics["sampling/skipped_update"] = float(self._sgcd_skip_update)
        sums: dict[str, float] = defaultdict(float)
        sums.update(batch.metrics)
        sums.update({k: float(v) for k, v in step.metrics.items()})
        for key, value in sums.items():
            self._metrics[mode][f"sgcd/{key}"].append(value)
        self.sgcd_last = step
        return out

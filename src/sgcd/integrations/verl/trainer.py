"""Trainer mode `sgcd`: verl's synchronous v1 PPO trainer with SGCD's credit weights on the advantages.

Only `_compute_advantage(batch, metrics)` changes (verl 0.9's v1 trainer, where a batch is a TransferQueue
`KVBatchMeta`: keys + tags; the tensors live in TransferQueue):

1. verl computes its own advantages first (`super()`: KL-in-reward, rollout correction, the configured outcome
   estimator, e.g. GRPO A_i = (R_i - mean_G R) / (std_G R + 1e-6) broadcast over the response).
2. The credit reference (algorithm.md §3): the rows' text-level episodes (written by the `sgcd_agent` loop into
   `extra_fields["sgcd"]`) are grouped by `uid`; each mixed group is summarized by
   `sgcd.credit_reference.summarize_groups` and its teacher prefix built by `teacher_prefixes` (reference in the
   system message, same chat template as the rollout).
3. Teacher log-probs (§4): the identical response tokens after the teacher prefix are put into TransferQueue
   under temporary keys and scored by `actor_rollout_wg.compute_log_prob`, the call verl uses for the old
   log-probs, so teacher = the current actor (pi_old) with a different prefix. Rows of groups that are not mixed
   keep their own prompt (A = 0 there, so w = 1 whatever the teacher says).
4. `credit.sgcd_token_advantages` (sgcd.core's credit_weights + reshape_advantages) turns A_i into
   Ahat = A_i * w_t; advantages and returns are written back.

Config: the `sgcd:` block (`credit.SGCDOptions`). `sgcd.variant=grpo` or `sgcd.teacher=none` skip steps 2-3 and
give exactly verl's GRPO. Departures: the teacher is always the actor (no frozen-reference teacher), and only the
D1 log-ratio divergence is offered (no top-k KL, no entropy gate: those need logits verl does not return).
Text-only models: the teacher's position ids are 0..L-1 (no multi-modal rope).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from sgcd.integrations.verl import TRAINER_MODE, check_verl_version
from sgcd.integrations.verl.codec import TokenizerCodec
from sgcd.integrations.verl.credit import SGCDOptions, group_record, record_turn_ids, sgcd_token_advantages

TEACHER_SUFFIX = "__sgcd_teacher"
# Fields that depend on the prompt length or are outputs of an earlier pass: never copied to teacher rows.
_NOT_COPIED = {"routed_experts", "log_probs", "entropy", "old_log_probs", "ref_log_prob", "values", "advantages",
               "returns", "multi_modal_inputs"}  # fmt: skip


def _rows(x: Any) -> list[Any]:
    """Per-row values of a TensorDict entry: tensors (nested or padded) or non-tensor items."""
    if isinstance(x, torch.Tensor):
        return list(x.unbind(0))
    return list(x.tolist()) if hasattr(x, "tolist") else list(x)


def _records(data: TensorDict) -> list[dict | None]:
    """Each row's agent-loop record (extra_fields["sgcd"]), None where a row carries none."""
    out: list[dict | None] = []
    for extra in _rows(data["extra_fields"]):
        raw = extra.get("sgcd") if isinstance(extra, dict) else None
        out.append(json.loads(raw) if raw else None)
    return out


def _padded(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    return x.to_padded_tensor(value) if x.is_nested else x


def _jagged(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def _like(padded_B_T: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """`padded_B_T` in the layout of `template` (jagged rows of its lengths, or padded as is)."""
    if not template.is_nested:
        return padded_B_T
    lengths = template.offsets().diff().tolist()
    return _jagged([padded_B_T[i, : int(n)] for i, n in enumerate(lengths)])


@register_trainer(TRAINER_MODE)
class SGCDTrainer(PPOTrainerSync):
    """PPOTrainerSync whose advantages carry SGCD's credit weights (see the module docstring)."""

    def __init__(self, config: Any) -> None:
        check_verl_version()
        SGCDOptions.from_config(config)  # a bad `sgcd:` block fails before any worker starts
        super().__init__(config)

    # ---- the hook ---------------------------------------------------------------------------------------------
    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        batch = super()._compute_advantage(batch, metrics)
        opts = SGCDOptions.from_config(self.config)
        fields = ["uid", "response_mask", "advantages", "old_log_probs", "extra_fields"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        mask_nested = data["response_mask"]
        mask_B_T = _padded(mask_nested).bool()
        adv_B_T = _padded(data["advantages"])
        old_B_T = _padded(data["old_log_probs"])
        teacher_B_T = None
        if opts.uses_teacher:
            prefixes, ref_metrics = self._teacher_prefixes(data, opts, batch.tags)
            metrics.update(ref_metrics)
            teacher_B_T = self._teacher_log_probs(batch, prefixes, mask_B_T.shape[1])
        gen = torch.Generator().manual_seed(opts.seed + int(getattr(self, "global_steps", 0) or 0))
        ahat_B_T, credit_metrics = sgcd_token_advantages(
            adv_B_T, mask_B_T, old_B_T, teacher_B_T, opts,
            turn_ids_B_T=record_turn_ids(_records(data), mask_B_T.shape[1]), generator=gen,
        )  # fmt: skip
        metrics.update({f"sgcd/{k}": v for k, v in credit_metrics.items()})
        nested = _like(ahat_B_T, mask_nested)
        out = TensorDict({"advantages": nested, "returns": nested.clone()}, batch_size=len(batch.keys))
        tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=out)
        return batch

    # ---- step 2: references and teacher prefixes ---------------------------------------------------------------
    def _summarizer(self, opts: SGCDOptions) -> Any:
        if getattr(self, "_sgcd_summarizer", None) is None:
            from sgcd.credit_reference import make_summarizer

            self._sgcd_summarizer = make_summarizer(opts.summarizer, **(opts.summarizer_options or {}))
        return self._sgcd_summarizer

    def _teacher_prefixes(
        self, data: TensorDict, opts: SGCDOptions, tags: list[dict] | None = None
    ) -> tuple[list[list[int] | None], dict]:
        """One teacher prefix per row (None: keep the row's own prompt) and the reference/ metrics."""
        from sgcd.credit_reference import summarize_groups, teacher_prefixes
        from sgcd.credit_reference.group_io import group_from_json

        uids = [str(u) for u in _rows(data["uid"])]
        extras = _rows(data["extra_fields"])
        rows_by_uid: dict[str, list[int]] = defaultdict(list)
        records: dict[int, dict] = {}
        padding = [bool((t or {}).get("is_padding", False)) for t in (tags or [{}] * len(uids))]
        for i, (uid, extra) in enumerate(zip(uids, extras)):
            raw = extra.get("sgcd") if isinstance(extra, dict) else None
            if raw and not padding[i]:  # verl's padding rows copy a real row's fields; other loops write none
                records[i] = json.loads(raw)
                rows_by_uid[uid].append(i)
        groups, group_rows = [], []
        for rows in rows_by_uid.values():
            group = group_from_json(group_record([records[i] for i in rows], opts.success_threshold))
            if group.is_mixed:
                groups.append(group)
                group_rows.append(rows)
        prefixes: list[list[int] | None] = [None] * len(uids)
        if not groups:
            return prefixes, {"sgcd/reference/mixed_groups": 0.0}
        summarizer = self._summarizer(opts)
        refs = summarize_groups(summarizer, groups)
        codec = TokenizerCodec(self.tokenizer)
        for group, ref, rows in zip(groups, refs, group_rows):
            prefix = list(teacher_prefixes(codec, group, ref))
            for i in rows:
                prefixes[i] = prefix
        raw_metrics = summarizer.metrics(reset=True)
        out = {"sgcd/reference/" + k.removeprefix("summarizer/"): float(v) for k, v in raw_metrics.items()}
        out["sgcd/reference/mixed_groups"] = float(len(groups))
        return prefixes, out

    # ---- step 3: teacher log-probs through the actor's compute_log_prob ----------------------------------------
    def _teacher_log_probs(
        self, batch: KVBatchMeta, prefixes: list[list[int] | None], T: int
    ) -> torch.Tensor:
        """(B, T) log-probs of each row's response tokens after its teacher prefix (its own prompt if None)."""
        full = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id)
        prompts = [p.tolist() for p in _rows(full["prompts"])]
        responses = [r.tolist() for r in _rows(full["responses"])]
        heads = [p if pre is None else pre for p, pre in zip(prompts, prefixes)]
        seqs = [h + r for h, r in zip(heads, responses)]
        fields = {k: full[k] for k in full.keys() if k not in _NOT_COPIED}
        fields["prompts"] = _jagged([torch.tensor(h, dtype=torch.int64) for h in heads])
        fields["input_ids"] = _jagged([torch.tensor(s, dtype=torch.int64) for s in seqs])
        fields["position_ids"] = _jagged([torch.arange(len(s), dtype=torch.int64) for s in seqs])
        if "attention_mask" in full.keys():
            fields["attention_mask"] = _jagged([torch.ones(len(s), dtype=torch.int64) for s in seqs])
        keys = [k + TEACHER_SUFFIX for k in batch.keys]
        tags = [
            {**tag, "prompt_len": len(h), "seq_len": len(s)} for tag, h, s in zip(batch.tags, heads, seqs)
        ]
        tq.kv_batch_put(keys=keys, partition_id=batch.partition_id, fields=TensorDict(fields, batch_size=len(keys)),
                        tags=tags)  # fmt: skip
        meta = KVBatchMeta(
            keys=keys, tags=tags, partition_id=batch.partition_id, extra_info=dict(batch.extra_info or {})
        )
        meta.extra_info.update({"calculate_entropy": False, "compute_loss": False,
                                "temperature": self.config.actor_rollout_ref.rollout.temperature})  # fmt: skip
        try:
            self.actor_rollout_wg.compute_log_prob(meta)
            out = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=["log_probs"])
            rows = [lp[len(h) - 1 : len(s) - 1] for lp, h, s in zip(_rows(out["log_probs"]), heads, seqs)]
        finally:
            tq.kv_clear(keys=keys, partition_id=batch.partition_id)
        teacher_B_T = torch.zeros(len(rows), T)
        for i, r in enumerate(rows):
            teacher_B_T[i, : r.shape[0]] = r.float()
        return teacher_B_T

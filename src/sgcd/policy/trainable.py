"""Which parameters train: all of them, only the top K blocks (+ the final norm), or LoRA adapters through peft.

`make_trainable(policy, lora_rank=, lora_alpha=, lora_targets=, train_layers=)` sets it up in place and returns a
summary. Rules:
- Trained tensors must be float32 (master weights; low precision is for compute, through `autocast`): bf16/fp16
  parameters are refused, because AdamW updates of ~1e-6 relative size round away in 8 mantissa bits.
- `train_layers=K` (0 = all): only the top K decoder blocks and the final norm have requires_grad; with
  `lora_rank > 0` the adapters go into those K blocks only (peft's `layers_to_transform`). The policy then caches
  the frozen trunk's hidden states (`HFPolicy.trunk_blocks`), so repeated passes over a row run the top only.
- `lora_rank = r > 0`: peft LoRA on `lora_targets` (module names), dropout 0, the base weights frozen. The
  reference model (teacher=reference, KL) is the same model with adapters disabled (`HFPolicy.reference`).
- `merged_copy`/`save_trained`: the final model is a merged plain HF folder (what `sgcd eval` loads), and the
  adapter is saved beside it under `adapter/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

DEFAULT_LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


class TrainableError(ValueError):
    """A training set-up that cannot work, as one line."""


def num_blocks(policy: Any) -> int:
    layers = getattr(policy.body(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TrainableError("train_layers needs a model whose body has a `layers` list of decoder blocks")
    return len(layers)


def make_trainable(
    policy: Any,
    *,
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
    lora_targets: str = DEFAULT_LORA_TARGETS,
    train_layers: int = 0,
) -> dict[str, float]:
    """Set requires_grad (or add adapters) on `policy.model` in place; returns counts for the run's log."""
    model = policy.model
    low = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
    if low:
        raise TrainableError(
            f"parameters are {low[0].removeprefix('torch.')}: training keeps float32 master weights; load the "
            "model in float32 (model.dtype=float32) and set model.autocast=bfloat16 for low-precision compute"
        )
    n = num_blocks(policy) if train_layers else 0
    if train_layers > n:
        raise TrainableError(f"model.train_layers={train_layers} but the model has {n} blocks")
    top = list(range(n - train_layers, n)) if train_layers else None
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        targets = [t.strip() for t in lora_targets.split(",") if t.strip()]
        config = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=targets,
            layers_to_transform=top,
        )
        try:
            policy.model = get_peft_model(model, config)
        except ValueError as exc:
            raise TrainableError(f"model.lora_targets={lora_targets!r}: {str(exc).splitlines()[0]}") from exc
    elif top is not None:
        model.requires_grad_(False)
        body = policy.body()
        for i in top:
            body.layers[i].requires_grad_(True)
        body.norm.requires_grad_(True)
    else:
        model.requires_grad_(True)
    policy.trunk_blocks = n - train_layers if top is not None and policy.trunk_supported() else 0
    trained = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in policy.model.parameters())
    return {"model/trained_params": float(trained), "model/params": float(total),
            "model/trunk_blocks": float(policy.trunk_blocks)}  # fmt: skip


def is_peft(policy: Any) -> bool:
    return hasattr(policy.model, "disable_adapter")


def save_trained(policy: Any, folder: Path) -> None:
    """A plain, merged HF folder at `folder` (+ `folder/adapter` with the LoRA adapter when there is one).

    The policy keeps training afterwards: the merge is done on a copy of the weights, not in place."""
    folder = Path(folder)
    if is_peft(policy):
        policy.model.save_pretrained(folder / "adapter")
        merged = merged_state(policy)
        base = policy.causal_lm()
        base.save_pretrained(folder, state_dict=merged)
    else:
        policy.model.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)


@torch.no_grad()
def merged_state(policy: Any) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA delta folded in (W + scale * B @ A), adapters untouched."""
    base = policy.causal_lm()
    out: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            w = module.base_layer.weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    w += module.get_delta_weight(adapter).to(w.dtype)
            out[f"{name}.weight"] = w
            if getattr(module.base_layer, "bias", None) is not None:
                out[f"{name}.bias"] = module.base_layer.bias.detach().clone()
    for name, tensor in base.state_dict().items():
        if "lora_" in name or ".base_layer." in name:
            continue
        out.setdefault(name, tensor.detach().clone())
    if getattr(base.config, "tie_word_embeddings", False):  # tied to the embeddings: saved once, as they are
        head = base.get_output_embeddings()
        out = {k: v for k, v in out.items() if not (k.endswith("lm_head.weight") and head is not None)}
    return out

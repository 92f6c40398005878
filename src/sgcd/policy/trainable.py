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
- `grad_checkpoint=True`: gradient passes recompute each block's activations in the backward pass instead of
  keeping them (`HFPolicy.grad_checkpoint`). LoRA over every block still backpropagates through all of them, so
  without it the update holds every block's activations (5.9 GB for 2 rows of 760 tokens on SmolLM2-135M).
- `save_model_folder` / `save_trained`: the final model and every checkpoint is a merged plain HF folder (what `sgcd eval` loads), and the
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
    grad_checkpoint: bool = False,
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
    policy.grad_checkpoint = grad_checkpoint
    trained = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in policy.model.parameters())
    return {"model/trained_params": float(trained), "model/params": float(total),
            "model/trunk_blocks": float(policy.trunk_blocks)}  # fmt: skip


def has_adapters(model: Any) -> bool:
    """True for a peft model (adapters that can be disabled): the one test every caller uses."""
    return hasattr(model, "disable_adapter")


def save_trained(policy: Any, folder: Path) -> None:
    """A plain, merged HF folder at `folder` (+ `folder/adapter` with the LoRA adapter when there is one)."""
    save_model_folder(policy.model, policy.tokenizer, folder)


def save_model_folder(model: Any, tokenizer: Any, folder: Path) -> None:
    """`model` as a from_pretrained-loadable folder. A peft model is saved merged (adapters folded into a copy
    of the weights; the live model keeps training) with its adapter beside it in `folder/adapter`."""
    folder = Path(folder)
    if has_adapters(model):
        model.save_pretrained(folder / "adapter")
        base = model.get_base_model()
        base.save_pretrained(folder, state_dict=merged_state(model))
    else:
        model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_adapter(model: Any, folder: Path) -> None:
    """Load the adapter weights `save_model_folder` wrote into a peft model (resume)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(folder) / "adapter" / "adapter_model.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"no LoRA adapter in {path.parent} (a checkpoint of a run without model.lora_rank?)"
        )
    result = set_peft_model_state_dict(model, load_file(str(path)))
    if getattr(result, "unexpected_keys", None):
        raise KeyError(f"adapter weights do not match the model (unexpected {result.unexpected_keys[:3]})")


@torch.no_grad()
def merged_state(model: Any) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA delta folded in (W + scale * B @ A), adapters untouched."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
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

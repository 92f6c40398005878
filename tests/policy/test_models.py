"""Model resolution: built-in specs build once, deterministically and atomically; missing models fail clearly."""

from __future__ import annotations

import hashlib

import pytest

from sgcd.policy.models import resolve_model
from sgcd.types import Message


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_builds_deterministically_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_CACHE", str(tmp_path / "a"))
    a = resolve_model("tiny")
    monkeypatch.setenv("SGCD_CACHE", str(tmp_path / "b"))
    b = resolve_model("tiny")
    assert a.parent == tmp_path / "a" / "models" and (a / "sgcd-model.json").exists()
    assert _digest(a) == _digest(b)  # same weights, same tokenizer, byte for byte
    assert [p.name for p in a.parent.iterdir() if p.name.startswith(".")] == []  # no temp folder left
    assert resolve_model("tiny") == b  # second call: cached, not rebuilt


def test_tiny_tokenizer_is_chatml_without_bos(tiny_policy):
    tok = tiny_policy.tokenizer
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    ids = tiny_policy.encode_prompt([Message("user", "hi")], [])
    assert tok.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    call = '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}</tool_call>'
    assert len(tok(call)["input_ids"]) < len(call) / 2  # the corpus taught it JSON / tool-call pieces


def test_tools_go_into_the_system_prompt(tiny_policy):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    text = tiny_policy.tokenizer.decode(
        tiny_policy.encode_prompt([Message("system", "Be brief."), Message("user", "hi")], tools)
    )
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert '{"type": "function", "function": {"name": "lookup"' in text and "<tool_call>" in text
    assert text.count("<|im_start|>system") == 1


def test_delta_is_glue_plus_next_header(tiny_policy):
    delta = tiny_policy.encode_delta([Message("tool", '{"ok": 1}', name="lookup"), Message("user", "and?")])
    assert tiny_policy.tokenizer.decode(delta) == (
        '\n<|im_start|>tool\n{"ok": 1}<|im_end|>\n<|im_start|>user\nand?<|im_end|>\n<|im_start|>assistant\n'
    )


@pytest.mark.slow
def test_smollm2_default_is_chatml_without_bos(smol_policy):
    tok = smol_policy.tokenizer
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    ids = smol_policy.encode_prompt([Message("system", "S"), Message("user", "hi")], [])
    assert (
        tok.decode(ids)
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert smol_policy.model.config.vocab_size == 49152 and smol_policy.eot_id == 2
    assert getattr(smol_policy.model.config, "quantization_config", None) is None


def test_missing_models_fail_with_a_way_forward(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="hf download"):
        resolve_model("nobody-has/this-model-xyz")
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="tiny"):
        resolve_model("./no/such/folder")
    from sgcd.policy.hf import HFPolicy

    with pytest.raises(ValueError, match="dtype 'fp8'"):
        HFPolicy.from_pretrained(tmp_path, dtype="fp8")

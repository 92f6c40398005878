"""A tokenizer-only stand-in for a TokenPolicy: the encoding half of `sgcd.policy.hf.HFPolicy`, no model.

Inside verl the model lives in the rollout server (vLLM / SGLang) and the FSDP/Megatron actor; the agent loop and
the trainer only hold a tokenizer. `TokenizerCodec` gives them exactly the encoding the reference trainer uses
(`sgcd.policy.chat.render_prompt` / `render_delta`), so `sgcd.rollout.record.EpisodeRecorder` records verl
trajectories token for token as it records ours, and `sgcd.credit_reference.teacher_prefixes` builds the teacher
prefix with the same template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sgcd.policy.chat import render_delta, render_prompt
from sgcd.types import Message


class TokenizerCodec:
    """encode_prompt / encode_delta / decode / eot_id over a Hugging Face tokenizer (what the recorder needs)."""

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token is None:
            raise ValueError("TokenizerCodec: the tokenizer has no eos_token (the end-of-turn token)")
        self.tokenizer = tokenizer
        self.eot_id: int = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> list[int]:
        return self._ids(render_prompt(self.tokenizer, messages, tools))

    def encode_delta(self, messages: Sequence[Message]) -> list[int]:
        return self._ids(render_delta(self.tokenizer, messages))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

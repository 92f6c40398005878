"""A tokenizer-only stand-in for a TokenPolicy inside verl: `sgcd.policy.chat.ChatCodec`, no model.

Inside verl the model lives in the rollout server (vLLM / SGLang) and the FSDP/Megatron actor; the agent loop and
the trainer only hold a tokenizer. The codec gives them exactly the encoding the reference trainer's HFPolicy uses
(it is HFPolicy's own base class), so `sgcd.rollout.record.EpisodeRecorder` records verl trajectories token for
token as it records ours, and `sgcd.credit_reference.teacher_prefixes` builds the teacher prefix with the same
template.
"""

from __future__ import annotations

from sgcd.policy.chat import ChatCodec as TokenizerCodec

__all__ = ["TokenizerCodec"]

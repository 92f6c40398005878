"""Helpers of the verl plugin tests (run under .venv-verl: `bash scripts/verl_setup.sh`).

`verl` is imported at module level on purpose: these tests exist to check the plugin against a real verl, and the
verl venv always has it, so a missing verl is an import error, never a skip.

- `FakeServer`: stands in for verl's LLM server client (vLLM / SGLang). It answers turn k with the scripted
  agent's text for turn k, tokenized by the policy's tokenizer, plus the end-of-turn token, and records the
  prompts it was sent.
- `make_loop`: an `SGCDAgentLoop` built through verl's own `AgentLoopBase.__init__` with a minimal config.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import torch
import verl  # noqa: F401  (loads the verl.plugins entry points, ours included)
from omegaconf import OmegaConf
from tensordict import NonTensorStack, TensorDict
from transfer_queue import KVBatchMeta
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.workers.rollout.replica import TokenOutput

from sgcd.envs.scripted import scripted_factory

TASK_INDEX = 14  # airline-lite/train/00014: get_reservation -> cancel_reservation -> final answer (3 turns)


@dataclass
class FakeServer:
    """verl's `server_manager.generate` for a scripted agent: turn k = the agent's k-th text + <|im_end|>."""

    tokenizer: Any
    agent: Any
    prompts: list[list[int]] = field(default_factory=list)
    params: list[dict] = field(default_factory=list)

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict, **_: Any):
        self.prompts.append(list(prompt_ids))
        self.params.append(dict(sampling_params))
        k = len(self.prompts) - 1
        text = self.agent.script[k] if k < len(self.agent.script) else "Done."
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = ids + [self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


def loop_config(response_length: int = 8192, max_turns: int = 16):
    return OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": 8192,
                    "response_length": response_length,
                    "multi_turn": {"max_assistant_turns": max_turns},
                }
            },
            "data": {},
        }
    )


def make_loop(tokenizer: Any, server: Any, **cfg: Any):
    from sgcd.integrations.verl.agent_loop import SGCDAgentLoop

    config = loop_config(**cfg)
    return SGCDAgentLoop(
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=None,
        data_config=DictConfigWrap(config.data),
    )


def run_scripted(tokenizer: Any, domain: Any, task: Any, spec: str, **cfg: Any):
    """(AgentLoopOutput, FakeServer) of one scripted episode of `task` through SGCDAgentLoop."""
    server = FakeServer(tokenizer, scripted_factory(spec, domain)(task))
    loop = make_loop(tokenizer, server, **cfg)
    info = {"sgcd_env": "airline-lite", "sgcd_split": task.split, "sgcd_task_id": task.task_id}
    out = asyncio.run(loop.run({"temperature": 1.0}, extra_info=info))
    return out, server


class FakeTQ:
    """An in-memory TransferQueue with the kv calls verl's v1 trainer and ours make (one process, no Ray).

    Rows are stored per key; `kv_batch_get` returns 1-D tensor fields as jagged nested tensors (the layout verl's
    trainer expects: it calls `.offsets()` on them) and other values as a NonTensorStack. Fields a row lacks are
    left out of a selection, as verl asks for optional fields (ref_log_prob, values, ...) unconditionally.
    """

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}

    @staticmethod
    def _row(value: Any, i: int) -> Any:
        if isinstance(value, torch.Tensor):
            return value.unbind(0)[i].clone() if value.is_nested else value[i].clone()
        return value[i].data if hasattr(value[i], "data") else value[i]

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None, **_: Any):
        for i, key in enumerate(keys):
            row = self.store.setdefault((partition_id, key), {})
            if fields is not None:
                for name in fields.keys():
                    row[name] = self._row(fields.get(name), i)
        return KVBatchMeta(keys=list(keys), tags=list(tags or [{} for _ in keys]), partition_id=partition_id)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        rows = [self.store[(partition_id, k)] for k in keys]
        names = list(select_fields) if select_fields is not None else list(rows[0])
        out: dict[str, Any] = {}
        for name in [n for n in names if all(n in r for r in rows)]:
            vals = [r[name] for r in rows]
            if isinstance(vals[0], torch.Tensor):
                out[name] = torch.nested.as_nested_tensor(vals, layout=torch.jagged)
            else:
                out[name] = NonTensorStack(*vals)
        return TensorDict(out, batch_size=len(keys))

    def kv_clear(self, keys, partition_id):
        for key in [keys] if isinstance(keys, str) else keys:
            self.store.pop((partition_id, key), None)


class FakeActorWG:
    """`actor_rollout_wg.compute_log_prob` on the tiny policy: reads each row's input_ids from the store and
    writes `log_probs` over the whole sequence in verl's convention (position j holds log p(x_{j+1} | x_<=j);
    the last position is 0)."""

    def __init__(self, policy: Any, tq: FakeTQ) -> None:
        self.policy, self.tq, self.calls = policy, tq, []

    def compute_log_prob(self, meta):
        self.calls.append(meta)
        data = self.tq.kv_batch_get(meta.keys, meta.partition_id, select_fields=["input_ids"])
        seqs = [r.tolist() for r in data["input_ids"].unbind(0)]
        scores = self.policy.score([s[:1] for s in seqs], [s[1:] for s in seqs]).logprobs
        rows = [torch.cat([scores[i, : len(s) - 1], torch.zeros(1)]) for i, s in enumerate(seqs)]
        fields = TensorDict(
            {"log_probs": torch.nested.as_nested_tensor(rows, layout=torch.jagged)}, batch_size=len(seqs)
        )
        self.tq.kv_batch_put(meta.keys, meta.partition_id, fields=fields)
        return meta

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

import verl  # noqa: F401  (loads the verl.plugins entry points, ours included)
from omegaconf import OmegaConf
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

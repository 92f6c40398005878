"""Dataset rows for verl: written by sgcd.integrations.verl.data, read by verl's own RLHFDataset, played by the
`sgcd_agent` loop with exactly the keyword arguments verl hands it (the row's fields)."""

from __future__ import annotations

import asyncio

from omegaconf import OmegaConf
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl_helpers import FakeServer, make_loop

from sgcd.envs.scripted import scripted_factory
from sgcd.integrations.verl.data import main


def test_rows_load_in_rlhfdataset_and_drive_the_agent_loop(tiny, domain, tmp_path, capsys):
    main(["--env", "airline-lite", "--out", str(tmp_path), "--limit-train", "3", "--limit-val", "2"])
    printed = capsys.readouterr().out
    assert "3 airline-lite/train tasks" in printed and "2 airline-lite/dev tasks" in printed
    config = OmegaConf.create({"max_prompt_length": 4096, "cache_dir": str(tmp_path / "cache")})
    ds = RLHFDataset(str(tmp_path / "train.parquet"), tiny.tokenizer, config)
    assert len(ds) == 3
    row = ds[1]
    task = domain.tasks("train")[1]
    assert row["agent_name"] == "sgcd_agent"
    assert row["extra_info"]["sgcd_task_id"] == task.task_id
    assert row["raw_prompt"][0]["content"] == task.instruction
    server = FakeServer(tiny.tokenizer, scripted_factory("gold", domain)(task))
    loop = make_loop(tiny.tokenizer, server)
    kwargs = {k: v for k, v in row.items() if k != "agent_name"}  # verl passes agent_name separately
    out = asyncio.run(loop.run({"temperature": 1.0}, **kwargs))
    assert out.reward_score == 1.0
    assert len(server.prompts) == len(domain.gold_turns(task))

"""SGCDGRPOTrainer under real two-process DDP on CPU (gloo on 127.0.0.1), two steps with the tiny model.

The seam fixes of issue 18 are per rank or collective, so one process cannot show them: the refill sampler is
seeded per rank (ranks must draw different refill orders), and the all-masked gate is decided over all ranks
(a batch with no loss token anywhere takes no optimizer step on any rank; a batch where only one rank has a
mixed group is one ordinary DDP step). Either going wrong leaves the ranks with different weights. The two
processes run ddp_worker.py (what each plays is in its docstring); this test reads what they wrote.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2] / "src"
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path) -> list[dict]:
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD),
            "LOCAL_WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
            "TRL_EXPERIMENTAL_SILENCE": "1", "ACCELERATE_USE_CPU": "true",
            "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        }  # fmt: skip
        log = (out / f"rank{rank}.log").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "ddp_worker.py"), str(out)], env=env, stdout=log, stderr=log
            )
        )
    codes = []
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, code in enumerate(codes):
        tail = (out / f"rank{rank}.log").read_text()[-3000:]
        assert code == 0, f"rank {rank} exited {code}:\n{tail}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_two_ddp_ranks_refill_apart_gate_together_and_stay_identical(tmp_path):
    r0, r1 = _launch(tmp_path)
    assert (r0["world_size"], r0["backend"], r0["ddp"]) == (2, "gloo", "DistributedDataParallel")
    # batch 1 has no mixed group on either rank: both refilled, from different task orders
    assert r0["draws"] and r1["draws"], "the check needs refills on both ranks"
    assert r0["draws"][0] != r1["draws"][0]  # the first refill of each rank (same size: 2 groups x G)
    assert (r0["sampler_rank"], r1["sampler_rank"]) == (0, 1)
    s0, s1 = r0["steps"], r1["steps"]
    assert [s["step"] for s in s0] == [s["step"] for s in s1] == [1, 2]
    # step 1: all masked everywhere -> no optimizer step (not even weight decay) on any rank
    assert s0[0]["kept_rows"] == s1[0]["kept_rows"] == 0
    assert s0[0]["skipped_update"] and s1[0]["skipped_update"]
    assert s0[0]["digest"] == s1[0]["digest"] == r0["before"] == r1["before"]
    # step 2: only rank 1 has a mixed group -> both ranks take the same DDP step
    assert s0[1]["kept_rows"] == 0 and s1[1]["kept_rows"] > 0, "the check needs a mixed group on rank 1 only"
    assert not s0[1]["skipped_update"] and not s1[1]["skipped_update"]
    assert s0[1]["digest"] == s1[1]["digest"] != r0["before"]

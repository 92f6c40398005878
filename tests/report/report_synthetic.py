"""A synthetic run folder with the trainer's layout and plausible random values (tests never read real runs).

Token strings include hostile ones (`</script>`, `<img onerror>`, `&amp;`, quotes, newlines, U+2028) so the
escaping of the page is exercised on every render.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

HOSTILE = ["</script>", "<script>alert(1)</script>", '<img src=x onerror="alert(2)">', "&amp;", '"', "\n",
           "\u2028", "<!--", "ünï", "{\"id\": 1}"]  # fmt: skip
WORDS = ["I", " will", " check", " the", " reservation", " first", ".", " Then", " cancel", " it"]
CALL = [
    "<tool_call>",
    '{"name":',
    ' "get_reservation_details",',
    ' "arguments":',
    ' {"id": "R1"}}',
    "</tool_call>",
]
OBS = ["<tool_response>", '{"status":', ' "ok"}', "</tool_response>", "\n"]
ANSWER = ["Your", " reservation", " is", " cancelled", "."]


def _trajectory(rng: random.Random, success: bool, advantage: float, eps: float, n_turns: int) -> dict:
    tokens, types, mask, turns = [], [], [], []
    for turn in range(n_turns):
        think = [
            rng.choice(WORDS + HOSTILE[:3] if rng.random() < 0.2 else WORDS) for _ in range(rng.randint(3, 9))
        ]
        for toks, code in ((think, 1), (CALL, 2)):
            tokens += toks
            types += [code] * len(toks)
            mask += [1] * len(toks)
            turns += [turn] * len(toks)
        obs = OBS + [rng.choice(HOSTILE)]
        tokens += obs
        types += [0] * len(obs)
        mask += [0] * len(obs)
        turns += [-1] * len(obs)
    tokens += ANSWER
    types += [3] * len(ANSWER)
    mask += [1] * len(ANSWER)
    turns += [n_turns] * len(ANSWER)
    n = len(tokens)
    student = [-abs(rng.gauss(0.8, 0.6)) for _ in range(n)]
    teacher = [s + rng.gauss(0.0, 0.4) for s in student]
    weights = [min(max(1.0 + rng.gauss(0.0, eps / 2), 1 - 2 * eps), 1 + 2 * eps) if m else 1.0 for m in mask]
    calls = [{"name": "get_reservation_details", "error": False, "is_write": False},
             {"name": "cancel_reservation", "error": not success, "is_write": True}]  # fmt: skip
    episode = {"steps": [{"turn": 0, "calls": calls}],
               "info": {"reason": "final_answer", "verifier": {"db_match": success, "answer_ok": success}}}  # fmt: skip
    return {
        "reward": 1.0 if success else 0.0,
        "episode": episode,
        "success": success,
        "advantage": advantage,
        "tokens": tokens,
        "token_ids": [rng.randrange(49152) for _ in range(n)],
        "action_mask": mask,
        "turn_ids": turns,
        "token_types": types,
        "weights": weights,
        "teacher_logprobs": [t if m else 0.0 for t, m in zip(teacher, mask)],
        "student_logprobs": [s if m else 0.0 for s, m in zip(student, mask)],
    }


def _reference(rng: random.Random) -> dict:
    return {
        "task_summary": "Cancel reservation <R1> & refund",
        "steps": [
            {
                "step_id": "S1",
                "tool": "get_reservation_details",
                "arg_pattern": "the id the user gave",
                "polarity": "helpful",
                "why": "successes look first",
                "evidence": {"succ": "3/3", "fail": "1/3"},
                "confidence": 0.9,
            },
            {
                "step_id": "S2",
                "tool": "cancel_reservation",
                "arg_pattern": "<b>bold</b> id",
                "polarity": "harmful",
                "why": "before checking",
                "evidence": {"succ": "0/3", "fail": "2/3"},
                "confidence": round(rng.random(), 2),
            },
        ],  # fmt: skip
        "first_divergence": {"step_id": "S1", "description": "failures skip the lookup"},
        "failure_modes": ["cancels without lookup <script>alert(3)</script>"],
        "end_state_requirements": ["reservation R1 cancelled"],
    }


def _metrics_row(rng: random.Random, step: int, eps: float, eval_every: int) -> dict:
    row: dict = {"step": step}
    row["reward/mean"] = min(1.0, 0.2 + 0.03 * step + rng.gauss(0, 0.05))
    row["reward/success_rate"] = row["reward/mean"]
    row["sampling/mixed_fraction"] = rng.random()
    row["credit/w_mean"] = 1.0
    row["credit/w_std"] = abs(rng.gauss(eps / 2, 0.01))
    for q, z in (("p1", -2.3), ("p5", -1.6), ("p50", 0.0), ("p95", 1.6), ("p99", 2.3)):
        row[f"credit/w_{q}"] = 1.0 + z * row["credit/w_std"]
    row["credit/w_frac_at_low"] = rng.random() * 0.02
    row["credit/w_frac_at_high"] = rng.random() * 0.02
    row["loss/pg"] = rng.gauss(0, 0.1)
    row["policy/entropy"] = 1.5 - 0.01 * step
    row["tools/state_changing_share"] = rng.random()
    row["tools/tool_error_rate"] = rng.random() * 0.3
    row["time/step_s"] = 2.0 + rng.random()
    if step % eval_every == 0:
        row["eval/success"] = min(1.0, 0.1 + 0.02 * step)
    return row


def make_run_dir(root: Path, steps: int = 12, eval_every: int = 4, groups_per_file: int = 2,
                 group_size: int = 4, n_turns: int = 2, eps: float = 0.2, seed: int = 0) -> Path:  # fmt: skip
    """Write a run folder under root/run and return its path."""
    rng = random.Random(seed)
    run = root / "run"
    (run / "samples").mkdir(parents=True)
    config = {"seed": seed, "steps": steps, "model": {"name": "tiny"}, "env": {"name": "airline-lite"},
              "algorithm": {"name": "sgcd"}, "credit": {"eps": eps, "lam": 1.0}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(steps + 1):
            f.write(json.dumps(_metrics_row(rng, step, eps, eval_every)) + "\n")
    summary = {"eval_before": {"success": 0.1}, "eval_after": {"success": 0.3}, "wall_time_s": 12.5}
    (run / "summary.json").write_text(json.dumps(summary))
    for step in range(eval_every, steps + 1, eval_every):
        with open(run / "samples" / f"step_{step:06d}.jsonl", "w") as f:
            for k in range(groups_per_file):
                outcomes = [i % 2 == 0 for i in range(group_size)]
                sibs = [_trajectory(rng, ok, 0.9 if ok else -0.9, eps, n_turns) for ok in outcomes]
                ref = _reference(rng)
                line = {"step": step, "task_id": f"task_{k}", "instruction": "Cancel <my> trip & refund",
                        "reference": ref, "reference_text": json.dumps(ref), "siblings": sibs}  # fmt: skip
                f.write(json.dumps(line) + "\n")
    return run

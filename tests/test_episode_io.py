"""The one episode JSON (sgcd.episode_io): a trajectory survives the record, the trainer's samples and verl's
agent-loop record carry the same shared fields for the same trajectory, and records written before the
"version" key (the trainer's old samples, verl's old records) still read."""

from __future__ import annotations

import json

import pytest
import torch

from sgcd.credit_reference.group_io import group_from_json
from sgcd.episode_io import (
    RECORD_FIELDS,
    RECORD_VERSION,
    trajectory_from_record,
    trajectory_record,
    with_success,
)
from sgcd.integrations.verl.credit import episode_record, group_record
from sgcd.report.rundir import RunDirError, parse_group
from sgcd.types import (
    CallRecord,
    Episode,
    Message,
    Observation,
    Step,
    ToolCall,
    Trajectory,
    TrajectoryGroup,
)

PROMPT = Observation(
    messages=(Message("system", "You are an airline agent."), Message("user", "Cancel ABC123.")),
    tools=({"type": "function", "function": {"name": "cancel", "parameters": {}}},),
)


def _trajectory(reward: float = 1.0, types: bool = True, group_id: int = 1) -> Trajectory:
    call = ToolCall("cancel", {"reservation_id": "ABC123", "why": ["plans", 2]}, id="c0")
    messages = (
        *PROMPT.messages,
        Message("assistant", '<tool_call>{"name": "cancel"}</tool_call>', tool_calls=(call,)),
        Message("tool", '{"status": "cancelled"}', name="cancel"),
        Message("assistant", "Done."),
    )
    steps = (
        Step(0, "call", (CallRecord("cancel", {"reservation_id": "ABC123"}, "ok", is_write=True),), "ok"),
        Step(1, "Done.", final=True),
    )
    ep = Episode("cancel-1", messages, steps, reward, reward >= 1.0,
                 info={"reason": "final_answer", "verifier": {"db_match": True}})  # fmt: skip
    return Trajectory(
        ep, prompt_ids=(1, 2, 3), token_ids=(5, 6, 7, 8), action_mask=(1, 1, 0, 1), turn_ids=(0, 0, -1, 1),
        logprobs=(-0.5, -0.25, 0.0, -1.125), truncated=True, group_id=group_id,
        token_types=(2, 2, 0, 3) if types else (),
    )  # fmt: skip


@pytest.mark.parametrize("types", [True, False])
def test_a_trajectory_survives_its_record(types):
    traj = _trajectory(types=types)
    record = json.loads(json.dumps(trajectory_record(traj)))
    assert record["version"] == RECORD_VERSION and set(record) == set(RECORD_FIELDS)
    assert (record["reward"], record["success"]) == (
        record["episode"]["reward"],
        record["episode"]["success"],
    )
    assert record["token_types"] == ([2, 2, 0, 3] if types else None)
    assert trajectory_from_record(record) == traj


def test_with_success_relabels_the_top_and_the_episode_alike():
    record = with_success(trajectory_record(_trajectory(reward=0.5)), True)
    assert record["success"] is True and trajectory_from_record(record).success is True


def test_a_newer_record_is_refused_in_one_line():
    record = {**trajectory_record(_trajectory()), "version": RECORD_VERSION + 1}
    with pytest.raises(ValueError, match="version 2 is not one this sgcd reads"):
        trajectory_from_record(record)
    line = {"step": 1, "siblings": [{**record, "tokens": ["a", "b", "c", "d"]}]}
    with pytest.raises(RunDirError, match=r"s:1: siblings\[0\]: episode record version"):
        parse_group(line, "s:1")


def _sample_sibling(traj: Trajectory) -> dict:
    """The trainer's sample row for `traj`, through sample_rows (the writer of RUN_DIR/samples)."""
    from sgcd.trainer.loop.batch import collate
    from sgcd.trainer.loop.step import StepOutput
    from sgcd.trainer.samples import sample_rows

    batch = collate([TrajectoryGroup("cancel-1", (traj,), PROMPT, "Cancel ABC123.")])
    out = StepOutput(
        metrics={}, batch=batch, references=[None], advantages_B=torch.tensor([0.5]),
        weights_B_T=torch.ones(1, 4), student_B_T=torch.zeros(1, 4),
    )  # fmt: skip

    class Tok:
        def decode(self, ids):
            return f"<{ids[0]}>"

    (row,) = sample_rows(out, 3, Tok(), n=1)
    return json.loads(json.dumps(row))["siblings"][0]


def test_trainer_samples_and_verl_records_share_the_episode_fields():
    traj = _trajectory(group_id=0)
    sample = _sample_sibling(traj)
    verl = json.loads(json.dumps(episode_record(traj, PROMPT, "Cancel ABC123.")))
    shared = set(sample) & set(verl)
    assert shared == set(RECORD_FIELDS), sorted(shared ^ set(RECORD_FIELDS))
    assert {k: sample[k] for k in RECORD_FIELDS} == {k: verl[k] for k in RECORD_FIELDS}
    assert set(sample) - shared == {"advantage", "tokens", "weights", "teacher_logprobs", "student_logprobs"}
    assert set(verl) - shared == {"instruction", "prompt"}
    assert trajectory_from_record(sample) == trajectory_from_record(verl) == traj


def test_verl_group_record_rebuilds_token_level_siblings_labelled_by_the_threshold():
    trajs = [_trajectory(reward=0.6, group_id=0), _trajectory(reward=0.2, group_id=1)]
    records = [json.loads(json.dumps(episode_record(t, PROMPT, "Cancel ABC123."))) for t in trajs]
    group = group_from_json(group_record(records, success_threshold=0.5))
    assert group.instruction == "Cancel ABC123." and group.prompt == PROMPT
    assert [t.success for t in group.trajectories] == [True, False] and group.is_mixed
    assert [t.token_ids for t in group.trajectories] == [trajs[0].token_ids, trajs[1].token_ids]


# ---- records written before the "version" key ---------------------------------------------------------------


def _old_episode(reward: float) -> dict:
    """The text-level episode as both old writers stored it (credit_reference.group_io.episode_to_json)."""
    return {
        "task_id": "cancel-1", "reward": reward, "success": reward >= 1.0,
        "messages": [{"role": "user", "content": "Cancel ABC123."},
                     {"role": "assistant", "content": "x",
                      "tool_calls": [{"name": "cancel", "arguments": {"reservation_id": "ABC123"}, "id": None}]}],
        "steps": [{"turn": 0, "text": "x", "observation": "ok", "error": False, "final": False,
                   "calls": [{"name": "cancel", "arguments": {"reservation_id": "ABC123"}, "output": "ok",
                              "error": False, "is_write": True}]}],
        "info": {"reason": "final_answer"},
    }  # fmt: skip


OLD_SAMPLE_SIBLING = {  # a sibling of RUN_DIR/samples/step_*.jsonl as the trainer wrote it before "version"
    "reward": 0.0, "success": False, "advantage": -0.7, "episode": _old_episode(0.0),
    "tokens": ["<5>", "<6>", "<7>"], "token_ids": [5, 6, 7], "action_mask": [1, 0, 1], "turn_ids": [0, -1, 1],
    "token_types": None, "weights": [1.0, 1.0, 1.0], "teacher_logprobs": None,
    "student_logprobs": [-0.5, 0.0, -0.25],
}  # fmt: skip

OLD_VERL_RECORD = {  # extra_fields["sgcd"] of the sgcd_agent loop before "version"
    "task_id": "cancel-1", "instruction": "Cancel ABC123.", "episode": _old_episode(1.0),
    "prompt": {"messages": [{"role": "user", "content": "Cancel ABC123."}], "tools": []},
    "turn_ids": [0, 0, -1, 1], "token_types": [2, 2, 0, 3],
}  # fmt: skip


def test_an_old_sample_sibling_still_reads():
    traj = trajectory_from_record(OLD_SAMPLE_SIBLING)
    assert traj.token_ids == (5, 6, 7) and traj.action_mask == (1, 0, 1) and traj.turn_ids == (0, -1, 1)
    assert traj.logprobs == (0.0, 0.0, 0.0) and traj.token_types == () and traj.reward == 0.0
    assert traj.episode.steps[0].calls[0].is_write
    line = {"step": 4, "task_id": "cancel-1", "instruction": "Cancel ABC123.", "reference": None,
            "reference_text": "", "siblings": [OLD_SAMPLE_SIBLING]}  # fmt: skip
    (sib,) = parse_group(line, "s:1").siblings
    assert (sib.reward, sib.success, sib.action_mask) == (0.0, False, [1, 0, 1])
    assert group_from_json(line).trajectories == (traj,)


def test_an_old_verl_record_reads_as_a_text_level_trajectory():
    traj = trajectory_from_record(OLD_VERL_RECORD)
    assert traj.token_ids == traj.turn_ids == traj.token_types == () and traj.success
    group = group_from_json(
        group_record([OLD_VERL_RECORD, {**OLD_VERL_RECORD, "episode": _old_episode(0.0)}], 1.0)
    )
    assert group.instruction == "Cancel ABC123." and group.is_mixed

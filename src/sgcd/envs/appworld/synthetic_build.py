"""Build a small synthetic APPWORLD_ROOT with the real appworld package (runs in the AppWorld venv).

Reads one JSON spec on stdin (written by `sgcd.envs.appworld.synthetic`) and writes, under spec["root"]:

    data/api_docs/{standard,function_calling}/<app>.json   generated from the installed apps' own code
    data/tasks/<task_id>/specs.json                        instruction, supervisor, datetime, db_version
    data/tasks/<task_id>/dbs/<app>.db                      empty schema databases for every app, created through
                                                           appworld's ModelCollection, then the task's few rows
    data/tasks/<task_id>/ground_truth/...                  answer, public/private data, metadata and our own
                                                           evaluation.py (minimal mode, as evaluation needs)
    data/datasets/<split>.txt                              task ids per split

Departures from the real benchmark data: databases are stored whole (".db"), not as changes against base_dbs;
the worlds hold only the supervisor, their simple_note account and the task's notes; the api_docs app's table is
filled from the installed code. Imports only the standard library and appworld (it runs as a script).
"""

import json
import os
import sys


def _write_json(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def _api_docs(root):
    """Write data/api_docs like the real data has, and return the standard docs for the ApiDoc table."""
    from appworld.apps import get_all_apps
    from appworld.collections.api_docs import ApiDocCollection
    from appworld.common.constants import CANARY_STRING

    docs = ApiDocCollection.build(
        load_apps=tuple(get_all_apps(skip_admin=True)), include_response_schemas=True
    )
    for app, name_to_doc in docs.items():
        standard = {name: dict(doc, canary_string=CANARY_STRING) for name, doc in name_to_doc.items()}
        _write_json(standard, os.path.join(root, "data", "api_docs", "standard", app + ".json"))
        calling = docs.copy().keep_apps([app]).function_calling()
        _write_json(calling, os.path.join(root, "data", "api_docs", "function_calling", app + ".json"))
    return docs


def _task_dbs(root, spec, task, docs):
    """Empty schema databases for every app, plus the rows this task needs, saved whole under dbs/."""
    from appworld.apps import get_all_apps
    from appworld.collections.models import ModelCollection

    apps = get_all_apps()
    memory = f":memory:synthetic-{task['task_id']}"
    mc = ModelCollection.load(
        to_db_home_path=memory, from_db_home_path=memory, load_apps=apps, create_db=True
    )
    person = dict(spec["supervisor"])
    mc.admin.MainUser.create(**person).save()
    supervisor = mc.supervisor.Supervisor.create(**person)
    supervisor.save()
    mc.supervisor.Task.create(supervisor_id=supervisor.id, instruction=task["instruction"]).save()
    mc.supervisor.AccountPassword.create(
        supervisor_id=supervisor.id, account_name="simple_note", password=task["note_password"]
    ).save()
    names = {k: person[k] for k in ("first_name", "last_name", "email")}
    user = mc.simple_note.User.create(**names, password=task["note_password"], verified=True)
    user.save()
    for note in task.get("notes", []):
        mc.simple_note.Note.create(user_id=user.id, title=note["title"], content=note["content"]).save()
    rows = []
    for app, name_to_doc in docs.items():
        for doc in name_to_doc.values():
            fields = {k: doc[k] for k in ("api_name", "path", "method", "description", "parameters")}
            rows.append(mc.api_docs.ApiDoc(app_name_=app, response_schemas=doc["response_schemas"], **fields))
    mc.api_docs.ApiDoc.save_all(rows)
    db_home = os.path.join(root, "data", "tasks", task["task_id"], "dbs")
    mc.save(db_home_path=db_home, format="full", app_names=list(apps), delete_if_exists=True)
    mc.close()


def _ground_truth(root, task):
    from appworld.common.constants import CANARY_STRING

    gt = os.path.join(root, "data", "tasks", task["task_id"], "ground_truth")
    metadata = {"difficulty": task.get("difficulty", 1), "mode": "minimal", "num_apps": 1, "num_apis": 3}
    metadata.update(num_api_calls=3, num_solution_code_lines=4)
    _write_json(metadata, os.path.join(gt, "metadata.json"))
    _write_json(task.get("public_data", {}), os.path.join(gt, "public_data.json"))
    _write_json({}, os.path.join(gt, "private_data.json"))
    _write_json(None, os.path.join(gt, "test_data.json"))
    with open(os.path.join(gt, "answer.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(task.get("answer")))
    with open(os.path.join(gt, "evaluation.py"), "w", encoding="utf-8") as f:
        f.write(f"# Canary String: {CANARY_STRING}\n" + task["evaluation"])


def build(spec):
    from appworld.common.constants import CANARY_STRING, DB_VERSION

    root = spec["root"]
    docs = _api_docs(root)
    for task in spec["tasks"]:
        _task_dbs(root, spec, task, docs)
        who = {k: spec["supervisor"][k] for k in ("first_name", "last_name", "email", "phone_number")}
        specs = {
            "instruction": task["instruction"],
            "supervisor": who,
            "datetime": spec["datetime"],
            "db_version": DB_VERSION,
            "canary_string": CANARY_STRING,
        }
        _write_json(specs, os.path.join(root, "data", "tasks", task["task_id"], "specs.json"))
        _ground_truth(root, task)
    for split, task_ids in spec["datasets"].items():
        path = os.path.join(root, "data", "datasets", split + ".txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in task_ids))


def main():
    spec = json.loads(sys.stdin.read())
    os.environ["APPWORLD_ROOT"] = spec["root"]
    sys.stdout = sys.stderr  # appworld prints progress; keep stdout for the result line
    build(spec)
    sys.__stdout__.write(json.dumps({"ok": True, "tasks": len(spec["tasks"])}) + "\n")
    sys.__stdout__.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

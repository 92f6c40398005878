"""One AppWorld world per process: the worker the trainer talks to over a pipe (stdin/stdout JSON lines).

This file runs under the AppWorld virtual environment's interpreter (`python -I worker.py`), never inside the
trainer: it imports only the standard library and `appworld`. AppWorld pins pydantic<2, freezes the process
clock while a world is open (freezegun) and executes model-written code; keeping it here keeps all of that out
of the trainer's process.

Protocol (one JSON object per line; the worker answers every request exactly once, in order):

    worker -> {"ready": true, "pid": P, "appworld": "0.1.3.post1"}           once, after importing appworld
    trainer -> {"op": "open", "task_id": T, "experiment_name": E, "timeout_seconds": S, "random_seed": R}
    worker -> {"ok": true, "instruction": ..., "supervisor": {...}, "datetime": ..., "apps": {name: description}}
    trainer -> {"op": "execute", "code": C}
    worker -> {"ok": true, "output": ..., "completed": bool, "api_calls": [{"method": m, "url": u}, ...]}
    trainer -> {"op": "evaluate"}
    worker -> {"ok": true, "success": bool, "pass_count": n, "fail_count": n, "num_tests": n,
               "passes": [requirement...], "failures": [{"requirement", "trace"}...], "answer": ...}
    trainer -> {"op": "close"} | {"op": "ping"} | {"op": "shutdown"}
    worker -> {"ok": false, "error": "one line"}                               when a request itself fails

The protocol channel is a private duplicate of the original stdout; fd 1 is pointed at stderr so nothing AppWorld
prints can corrupt it. The worker exits when stdin closes or its parent dies.

Containment, on top of AppWorld's own guard (which refuses imports outside an allow-list and no-ops dangerous
functions): while model code runs, an audit hook refuses network (socket connect/bind/send/resolve), process
creation and signals, file writes, file reads outside the interpreter's and AppWorld's code trees (so not the
data folder with the ground truth), ctypes, and new audit hooks. The process gets a scrubbed environment (no API keys) and an address-space limit. This is defense in
depth, not a security boundary: for adversarial models run workers in a container (AppWorld's docker mode).
"""

import json
import os
import resource
import sys
import threading
import time
import traceback

_BLOCKED_EVENTS = (
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.symlink",
    "os.link",
    "os.putenv",
    "os.unsetenv",
    "os.chdir",
    "shutil.",
    "ctypes.",
    "sys.addaudithook",
    "signal.",
    "pty.",
    "webbrowser.",
    "urllib.Request",
    "http.client.connect",
    "ftplib.",
    "smtplib.",
    "imaplib.",
    "poplib.",
    "telnetlib.",
)
_PATH_EVENTS = ("os.listdir", "os.scandir", "glob.glob", "open")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class _Sandbox:
    """The audit-hook policy; armed only while model code runs (AppWorld's own bookkeeping stays free)."""

    def __init__(self, read_roots):
        self.armed = False
        self.read_roots = tuple(sorted({os.path.realpath(r) for r in read_roots if r}))

    def _readable(self, path):
        if isinstance(path, int):
            return True  # an already-open descriptor: opening it was checked
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(str(path))
        return any(real == r or real.startswith(r + os.sep) for r in self.read_roots)

    def hook(self, event, args):
        if not self.armed:
            return
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"{event} is not allowed in the AppWorld worker sandbox")
        if event in _PATH_EVENTS and args:
            if event == "open":
                path, mode, flags = (list(args) + [None, None, None])[:3]
                if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE_FLAGS
                ):
                    raise PermissionError("writing files is not allowed in the AppWorld worker sandbox")
            else:
                path = args[0]
            if path is not None and not self._readable(path if path != "" else "."):
                raise PermissionError(f"{event}({path!r}) is outside the AppWorld worker sandbox")


class Worker:
    """Holds at most one open AppWorld world and serves protocol requests."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.world = None

    def _close_world(self):
        if self.world is not None:
            world, self.world = self.world, None
            world.close()

    def op_ping(self, req):
        return {"pid": os.getpid()}

    def op_open(self, req):
        from appworld import AppWorld
        from appworld.apps import APP_TO_DESCRIPTION

        self._close_world()
        world = AppWorld(
            task_id=req["task_id"],
            experiment_name=req["experiment_name"],
            timeout_seconds=req.get("timeout_seconds", 60),
            random_seed=req.get("random_seed", 100),
            max_interactions=req.get("max_interactions", 1000),
            load_ground_truth=False,  # nothing in the model's process holds the answers; evaluate loads them
        )
        self._arm_around_cells(world)
        self.world = world
        task = world.task
        return {
            "instruction": task.instruction,
            "supervisor": dict(task.supervisor),
            "datetime": task.datetime.isoformat(),
            "apps": {name: APP_TO_DESCRIPTION[name] for name in task.allowed_apps},
        }

    def _arm_around_cells(self, world):
        """Arm the sandbox exactly while IPython runs a model-written cell (AppWorld's guard is on too)."""
        run_cell = world.shell.run_cell
        sandbox = self.sandbox

        def guarded_run_cell(*args, **kwargs):
            sandbox.armed = True
            try:
                return run_cell(*args, **kwargs)
            finally:
                sandbox.armed = False

        guarded_run_cell.__name__ = "run_cell"  # AppWorld's timeout message names the function
        world.shell.run_cell = guarded_run_cell

    def _need_world(self):
        if self.world is None:
            raise RuntimeError("no world is open: send 'open' first")
        return self.world

    def op_execute(self, req):
        world = self._need_world()
        before = len(world.requester.request_tracker.requests)
        output = world.execute(req["code"])
        calls = world.requester.request_tracker.requests[before:]
        return {
            "output": output,
            "completed": bool(world.task_completed()),
            "api_calls": [{"method": str(c.get("method", "")), "url": str(c.get("url", ""))} for c in calls],
        }

    def op_evaluate(self, req):
        from appworld.evaluator import evaluate_task

        world = self._need_world()
        # what world.evaluate() calls, minus its check that the world itself loaded the ground truth
        tracker = evaluate_task(world.task_id, experiment_name=world.experiment_name, suppress_errors=True)
        answer = None
        try:
            active = world.requester.request("supervisor", "show_active_task", track=False)
            answer = active.get("answer")
        except Exception:  # the answer is diagnostics only
            pass
        return {
            "success": bool(tracker.success),
            "pass_count": tracker.pass_count,
            "fail_count": tracker.fail_count,
            "num_tests": tracker.num_tests,
            "passes": [p["requirement"] for p in tracker.passes],
            "failures": [{"requirement": f["requirement"], "trace": f["trace"]} for f in tracker.failures],
            "answer": answer,
        }

    def op_close(self, req):
        self._close_world()
        return {}

    def handle(self, req):
        op = req.get("op")
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        try:
            out = fn(req)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]}
        out["ok"] = True
        return out


def _watch_parent(parent_pid):
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(1.0)


def _limit_memory():
    mb = int(os.environ.get("SGCD_APPWORLD_MEMORY_MB", "0") or 0)
    if mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))


def main():
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # AppWorld's own prints go to stderr, never into the protocol
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _limit_memory()

    import appworld

    # Not APPWORLD_ROOT/data: it holds every task's ground truth, and a policy trained by RL would learn to read it.
    read_roots = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(appworld.__file__),
        "/usr/share/zoneinfo",
        os.devnull,
    ]
    sandbox = _Sandbox(read_roots)
    sys.addaudithook(sandbox.hook)
    worker = Worker(sandbox)
    proto.write(json.dumps({"ready": True, "pid": os.getpid(), "appworld": appworld.__version__}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            proto.write(json.dumps({"ok": False, "error": f"bad request line: {exc}"}) + "\n")
            continue
        if req.get("op") == "shutdown":
            worker.handle({"op": "close"})
            proto.write(json.dumps({"ok": True}) + "\n")
            break
        proto.write(json.dumps(worker.handle(req), default=str) + "\n")
    os._exit(0)  # AppWorld leaves non-daemon state behind; exit now (its own CLI does the same)


if __name__ == "__main__":
    main()

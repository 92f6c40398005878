"""One AppWorld world per process: the worker the trainer talks to over a pipe (stdin/stdout JSON lines).

This file runs under the AppWorld virtual environment's interpreter (`python -I worker.py`), never inside the
trainer: it imports only the standard library and `appworld`. AppWorld pins pydantic<2, freezes the process
clock while a world is open (freezegun) and executes model-written code; keeping it here keeps all of that out
of the trainer's process.

Protocol (one JSON object per line; the worker answers every request exactly once, in order):

    worker -> {"ready": true, "pid": P, "appworld": "0.1.3.post1", "landlock": ABI}  once, after importing appworld
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

Containment. Model-written code never runs in this process. `open` forks a *cell process* that opens the world
for the episode (without its ground truth), and runs every cell of it. Before it answers `open`, the cell
process locks itself in, irrevocably, at two levels:

1. the kernel (the boundary): no_new_privs plus a Landlock ruleset, which no code in the process can lift:
   files are readable only under the interpreter's and AppWorld's code trees, a few system library folders and
   the zoneinfo database, and writable only in the episode's own output folder (so never the data folder with
   the ground truth, never /proc of another process, never a file of the user's); no program can be executed;
   no TCP connect or bind; no signal to, and no abstract unix socket of, any process outside the sandbox.
   Resource limits (no core files, a file-size cap, few descriptors; the address-space limit comes from the
   worker) apply as well. `sandbox="audit"` (a domain option) runs without Landlock on kernels that lack it,
   which is not a security boundary.
2. an audit hook installed for the life of the process (hooks cannot be removed) with no switch: it refuses
   network, process creation, signals, ctypes, tracing, new audit hooks, file writes outside the output folder
   and reads outside the code trees. Its policy lives in its own default arguments and it refuses any change to
   a function's code or defaults, so the model's code cannot turn it off by walking frames, closures, globals or
   the heap (and if it could, the kernel rules would still hold).

The cell process also drops the trainer's channel (it cannot forge an answer) and gets no ground truth: the
world is opened with `load_ground_truth=False`, and `evaluate` runs in a short-lived child of this trusted
process, on the state the cell process saved to disk (whole databases) at the end of the episode. The
trainer starts the worker with an empty environment (`env -i` style: no API keys, no inherited variables).
"""

import ctypes
import json
import os
import resource
import signal
import stat
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
    "os.putenv",
    "os.unsetenv",
    "os.chdir",
    "os.chown",
    "os.chroot",
    "ctypes.",
    "sys.addaudithook",
    "sys.settrace",
    "sys.setprofile",
    "sys._current_frames",
    "sqlite3.enable_load_extension",
    "sqlite3.load_extension",
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
# file-system changes: allowed only inside the episode's output folder (AppWorld saves its state there)
_MUTATION_EVENTS = (
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.truncate",
    "os.symlink",
    "os.link",
    "os.utime",
    "shutil.",
)
_PATH_EVENTS = ("os.listdir", "os.scandir", "glob.glob", "open")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_SELF_PROTECTED = ("__code__", "__defaults__", "__kwdefaults__")


def make_hook(read_roots, write_roots):
    """The cell process's audit hook. Everything it consults is bound here, as default arguments of a function
    without closures or global names, so nothing reachable from the model's code changes what it does."""
    read_roots = tuple(sorted({os.path.realpath(r) for r in read_roots if r}))
    write_roots = tuple(sorted({os.path.realpath(r) for r in write_roots if r}))

    def hook(
        event,
        args,
        _blocked=_BLOCKED_EVENTS,
        _mutations=_MUTATION_EVENTS,
        _paths=_PATH_EVENTS,
        _write_flags=_WRITE_FLAGS,
        _protected=_SELF_PROTECTED,
        _read=read_roots + write_roots,
        _write=write_roots,
        _realpath=os.path.realpath,
        _fsdecode=os.fsdecode,
        _fspath=os.fspath,
        _sep=os.sep,
        _isinstance=isinstance,
        _str=str,
        _bytes=bytes,
        _int=int,
        _pathlike=os.PathLike,
        _function=type(make_hook),
        _error=PermissionError,
    ):
        if event == "object.__setattr__" or event == "object.__delattr__":
            if len(args) > 1 and _isinstance(args[0], _function) and args[1] in _protected:
                raise _error(
                    "changing a function's code or defaults is not allowed in the AppWorld worker sandbox"
                )
            return
        if event.startswith(_blocked):
            raise _error(f"{event} is not allowed in the AppWorld worker sandbox")
        if event.startswith(_mutations):
            for arg in args:
                if _isinstance(arg, _pathlike):
                    arg = _fspath(arg)
                if _isinstance(arg, _bytes):
                    arg = _fsdecode(arg)
                if not _isinstance(arg, _str):
                    continue  # modes, descriptors, dir_fd
                real = _realpath(arg)
                ok = False
                for root in _write:
                    if real == root or real.startswith(root + _sep):
                        ok = True
                if not ok:
                    raise _error(f"{event} is not allowed in the AppWorld worker sandbox")
            return
        if event == "sqlite3.connect" and args:
            db = args[0]
            if _isinstance(db, _pathlike):
                db = _fspath(db)
            if _isinstance(db, _bytes):
                db = _fsdecode(db)
            if not _isinstance(db, _str) or db in ("", ":memory:") or "mode=memory" in db:
                return
            path = db[5:].split("?")[0] if db.startswith("file:") else db
            real = _realpath(path)
            for root in _read:
                if real == root or real.startswith(root + _sep):
                    return
            raise _error(f"sqlite3.connect({path!r}) is outside the AppWorld worker sandbox")
        if event in _paths and args:
            writing = False
            if event == "open":
                path = args[0]
                mode = args[1] if len(args) > 1 else None
                flags = args[2] if len(args) > 2 else None
                if _isinstance(mode, _str):
                    for c in "wax+":
                        if c in mode:
                            writing = True
                if _isinstance(flags, _int) and flags & _write_flags:
                    writing = True
            else:
                path = args[0]
            if path is None or _isinstance(path, _int):
                return  # an already-open descriptor: opening it was checked
            if _isinstance(path, _pathlike):
                path = _fspath(path)
            if _isinstance(path, _bytes):
                path = _fsdecode(path)
            real = _realpath(_str(path) if path != "" else ".")
            for root in _write if writing else _read:
                if real == root or real.startswith(root + _sep):
                    return
            if writing:
                raise _error("writing files is not allowed in the AppWorld worker sandbox")
            raise _error(f"{event}({path!r}) is outside the AppWorld worker sandbox")

    return hook


# ---- the kernel layer: Landlock through its three system calls (same numbers on every architecture) --------
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_DIR, _FS_REMOVE_FILE, _FS_MAKE_DIR, _FS_MAKE_REG = 1 << 4, 1 << 5, 1 << 7, 1 << 8
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_READ = _FS_READ_FILE | _FS_READ_DIR
_READ_WRITE = (
    _READ
    | _FS_WRITE
    | _FS_TRUNCATE
    | _FS_REMOVE_DIR
    | _FS_REMOVE_FILE
    | _FS_MAKE_DIR
    | _FS_MAKE_REG
    | _FS_REFER
)
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi():
    """The kernel's Landlock ABI version, or 0 when it has none (or a seccomp filter hides it)."""
    try:
        abi = _libc().syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def landlock(rules, abi):
    """Restrict this process (and anything it starts) to `rules` [(path, rights)] for good: every file access
    not granted, every TCP bind/connect (ABI >= 4), signals and abstract unix sockets beyond it (ABI >= 6)."""
    libc = _libc()
    fs = (1 << 13) - 1
    fs |= (
        (_FS_REFER if abi >= 2 else 0)
        | (_FS_TRUNCATE if abi >= 3 else 0)
        | (_FS_IOCTL_DEV if abi >= 5 else 0)
    )
    attr = _RulesetAttr(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a folder this machine does not have
            try:
                allowed = rights & fs
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= _FILE_RIGHTS
                rule = _PathBeneath(allowed, fd)
                if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), 0):
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)):
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _code_roots():
    import appworld

    return [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(appworld.__file__),
        "/usr/share/zoneinfo",
        os.devnull,
    ]


# what the interpreter itself may need to read while a cell runs (shared libraries for lazy imports)
_SYSTEM_READ = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
)


def _lock_in(write_root, sandbox, abi):
    """Enter the cell process's sandbox; from here on nothing can undo it."""
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the trusted worker dies -> so does the cell
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 2**20, 256 * 2**20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    code_roots = _code_roots()
    if sandbox == "landlock":
        rules = [(r, _READ) for r in [*code_roots, *_SYSTEM_READ] if r != os.devnull]
        rules += [(os.devnull, _FS_READ_FILE | _FS_WRITE), ("/dev/urandom", _FS_READ_FILE)]
        rules += [(write_root, _READ_WRITE)]
        landlock(rules, abi)
    sys.addaudithook(make_hook(code_roots, [write_root]))


class _Cell:
    """The trusted side's handle on the episode's cell process: a pid and a request/answer pipe pair."""

    def __init__(self, pid, requests, answers):
        self.pid, self.requests, self.answers = pid, requests, answers

    def ask(self, req):
        try:
            self.requests.write(json.dumps(req) + "\n")
            self.requests.flush()
            line = self.answers.readline()
        except (BrokenPipeError, OSError):
            line = ""
        try:
            reply = json.loads(line) if line else None
        except json.JSONDecodeError:
            reply = None  # the model's code wrote into the pipe: treat as a crash
        if not isinstance(reply, dict):
            self.die_with_it()
        return reply

    def die_with_it(self):
        """The cell process died (or broke the protocol): this worker dies the same way, so the trainer sees a
        crashed worker and replaces it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(self.pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGKILL:
            sig = os.WTERMSIG(status)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) and os.WEXITSTATUS(status) else 4)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        for f in (self.requests, self.answers):
            try:
                f.close()
            except OSError:
                pass


def _serve_cells(world, requests, answers):
    """The cell process's loop: execute cells and report the answer; exits when the trusted side says so."""
    for line in requests:
        req = json.loads(line)
        try:
            if req["op"] == "execute":
                before = len(world.requester.request_tracker.requests)
                output = world.execute(req["code"])
                calls = world.requester.request_tracker.requests[before:]
                out = {
                    "output": output,
                    "completed": bool(world.task_completed()),
                    "api_calls": [
                        {"method": str(c.get("method", "")), "url": str(c.get("url", ""))} for c in calls
                    ],
                }
            elif (
                req["op"] == "save"
            ):  # the end state, whole (not as changes), for the trusted side to evaluate
                from appworld.apps.api_lib import save_local_dbs

                save_local_dbs(
                    from_db_home_path=world.models_to_db_home_path,
                    to_db_home_path=world.output_db_home_path_on_disk,
                    format="full",
                    app_names=[*world.task.allowed_apps, "admin"],
                    delete_if_exists=True,
                    save_model_hashes=True,
                )
                active = world.requester.request("supervisor", "show_active_task", track=False)
                out = {"answer": active.get("answer")}
            else:
                break
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]}
        out.setdefault("ok", True)
        answers.write(json.dumps(out, default=str) + "\n")
        answers.flush()
    os._exit(0)


def _open_world(req):
    from appworld import AppWorld
    from appworld.apps import APP_TO_DESCRIPTION

    world = AppWorld(
        task_id=req["task_id"],
        experiment_name=req["experiment_name"],
        timeout_seconds=req.get("timeout_seconds", 60),
        random_seed=req.get("random_seed", 100),
        max_interactions=req.get("max_interactions", 1000),
        load_ground_truth=False,  # nothing in the model's process holds the answers; evaluate loads them
    )
    task = world.task
    opened = {
        "instruction": task.instruction,
        "supervisor": dict(task.supervisor),
        "datetime": task.datetime.isoformat(),
        "apps": {name: APP_TO_DESCRIPTION[name] for name in task.allowed_apps},
    }
    return world, opened


def _evaluate(task_id, experiment_name):
    from appworld.evaluator import evaluate_task

    tracker = evaluate_task(task_id, experiment_name=experiment_name, suppress_errors=True)
    return {
        "success": bool(tracker.success),
        "pass_count": tracker.pass_count,
        "fail_count": tracker.fail_count,
        "num_tests": tracker.num_tests,
        "passes": [p["requirement"] for p in tracker.passes],
        "failures": [{"requirement": f["requirement"], "trace": f["trace"]} for f in tracker.failures],
    }


def _in_child(fn, *args):
    """fn(*args) in a forked child of this (trusted) process; its JSON-able result, or RuntimeError."""
    read_fd, write_fd = os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            out = {"ok": True, "value": fn(*args)}
        except BaseException as exc:
            traceback.print_exc(file=sys.stderr)
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]}
        with os.fdopen(write_fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(out, default=str))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "r", encoding="utf-8") as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    out = json.loads(text) if text else {"ok": False, "error": "the evaluation process died"}
    if not out["ok"]:
        raise RuntimeError(out["error"])
    return out["value"]


class Worker:
    """Holds at most one open world (in its cell process) and serves protocol requests."""

    def __init__(self, sandbox, abi, private_fds):
        self.sandbox, self.abi, self.private_fds = sandbox, abi, private_fds
        self.cell = None
        self.task_id = self.experiment_name = None

    def _close_world(self):
        if self.cell is not None:
            cell, self.cell = self.cell, None
            cell.stop()

    def op_ping(self, req):
        return {"pid": os.getpid()}

    def op_open(self, req):
        self._close_world()
        cell, opened = self._fork_cell(req)
        if not opened.pop("ok", False):
            cell.stop()
            raise RuntimeError(opened.get("error", "opening the world failed"))
        self.cell = cell
        self.task_id, self.experiment_name = req["task_id"], req["experiment_name"]
        return opened

    def _fork_cell(self, req):
        """Start the episode's cell process: it opens the world (AppWorld's in-process API server needs its own
        threads, so the world must be born there), locks itself in, answers with the task, then runs cells."""
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the cell process
            try:
                os.close(req_w)
                os.close(ans_r)
                for fd in self.private_fds:  # the trainer's channel: the cell cannot forge answers on it
                    os.close(fd)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.close(devnull)
                requests = os.fdopen(req_r, "r", encoding="utf-8")
                answers = os.fdopen(ans_w, "w", buffering=1, encoding="utf-8")
            except BaseException:
                traceback.print_exc(file=sys.stderr)
                os._exit(5)
            try:
                world, opened = _open_world(req)
                _lock_in(os.path.abspath(world.output_directory), self.sandbox, self.abi)
                opened["ok"] = True
            except BaseException as exc:
                traceback.print_exc(file=sys.stderr)
                answers.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}) + "\n")
                os._exit(5)
            answers.write(json.dumps(opened, default=str) + "\n")
            _serve_cells(world, requests, answers)
            os._exit(0)
        os.close(req_r)
        os.close(ans_w)
        cell = _Cell(pid, os.fdopen(req_w, "w", encoding="utf-8"), os.fdopen(ans_r, "r", encoding="utf-8"))
        line = cell.answers.readline()
        try:
            opened = json.loads(line)
        except json.JSONDecodeError:
            opened = None
        if not isinstance(opened, dict):
            cell.die_with_it()
        return cell, opened

    def _need_cell(self):
        if self.cell is None:
            raise RuntimeError("no world is open: send 'open' first")
        return self.cell

    def _ask(self, req):
        reply = self._need_cell().ask(req)
        if not reply.pop("ok", False):
            raise RuntimeError(reply.get("error", "the cell process failed"))
        return reply

    def op_execute(self, req):
        return self._ask({"op": "execute", "code": req["code"]})

    def op_evaluate(self, req):
        answer = self._ask({"op": "save"}).get("answer")  # the answer is diagnostics only
        # What world.evaluate() calls, on the state the cell process saved, in a short-lived child of this
        # process: AppWorld keeps the evaluated databases bound in module state, which a cell process forked
        # later must not inherit.
        out = _in_child(_evaluate, self.task_id, self.experiment_name)
        out["answer"] = answer
        return out

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
    proto_fd = os.dup(1)
    proto = os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # AppWorld's own prints go to stderr, never into the protocol
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _limit_memory()
    sandbox = os.environ.get("SGCD_APPWORLD_SANDBOX", "landlock")
    abi = landlock_abi()

    import appworld

    hello = {"ready": True, "pid": os.getpid(), "appworld": appworld.__version__, "landlock": abi}
    if sandbox == "landlock" and abi < 1:
        hello = {
            "ready": False,
            "error": "this kernel has no Landlock (Linux >= 5.13 with landlock enabled), which the AppWorld "
            "sandbox needs; pass the domain option sandbox=audit to run without it (not a security boundary)",
        }
    proto.write(json.dumps(hello) + "\n")
    if not hello["ready"]:
        os._exit(2)
    worker = Worker(sandbox, abi, private_fds=(proto_fd,))
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

"""Worker processes for AppWorld: one world per process, JSON lines over a pipe, timeouts, kill-and-replace.

`WorkerClient` starts `worker.py` under the AppWorld venv's interpreter and sends it requests; `WorkerPool` hands
workers to environments (one per live episode) and replaces the ones that die. Nothing here opens a socket: the
only channel is the child's stdin/stdout. A request that outlives its deadline kills the worker's whole process
group (the model's code may have hung it); a worker whose pipe breaks has crashed. Both surface as `WorkerDied`
with a one-line reason, and the pool never hands that worker out again.

Departure from AppWorld's own set-up: it runs worlds in the caller's process (or behind an HTTP server); we keep
them in child processes because AppWorld freezes the clock of the process that opens a world and pins libraries
the trainer cannot import.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# The worker's whole environment is built here from nothing (`env -i` style): nothing of the trainer's (API keys,
# tokens, proxies) is inherited. Only the time zone passes through, since it changes no behaviour of ours.
_ENV_PASSTHROUGH = ("TZ",)
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class WorkerDied(Exception):
    """The worker timed out (and was killed) or crashed; `reason` says which, in one line."""

    def __init__(self, reason: str, timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out


class SandboxUnavailable(RuntimeError):
    """The worker cannot confine model code on this machine (no Landlock); one line saying what to do."""


class WorkerError(Exception):
    """The worker is alive but refused the request (e.g. an unknown task id); the message is its one line."""


@dataclass(frozen=True)
class WorkerSpec:
    """How to start a worker.

    python: the AppWorld venv's interpreter. data_root: the APPWORLD_ROOT holding data/. scratch: a directory of
    ours used as the worker's APPWORLD_ROOT (data/ symlinked in) so outputs never land in the user's data tree.
    memory_mb: address-space limit of each worker (0 = none). start_timeout_s: importing appworld.
    sandbox: "landlock" (the kernel confines the process that runs the model's code; the default) or "audit"
    (only the in-process audit hook, for kernels without Landlock; not a security boundary).
    """

    python: str
    data_root: str
    scratch: str
    memory_mb: int = 8192
    start_timeout_s: float = 120.0
    sandbox: str = "landlock"


class WorkerClient:
    """One worker process; `request` is synchronous and never waits past its timeout."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}  # no API keys reach model code
        env.update(
            PATH=_SAFE_PATH,
            LANG="C.UTF-8",
            APPWORLD_ROOT=spec.scratch,
            APPWORLD_CACHE=os.path.join(spec.scratch, ".appworld"),
            HOME=spec.scratch,
            SGCD_APPWORLD_MEMORY_MB=str(spec.memory_mb),
            SGCD_APPWORLD_SANDBOX=spec.sandbox,
        )
        self.proc = subprocess.Popen(
            [spec.python, "-I", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=spec.scratch,
            start_new_session=True,  # its own process group: a kill takes anything it spawned too
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        self.dead = False
        self._ready = False

    def _pump_stdout(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip())

    def _read(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise WorkerDied(
                f"{what} timed out after {timeout_s:g}s; worker {self.pid} killed", True
            ) from None
        if line is None:
            code = self.proc.wait()
            self.dead = True
            last = next((s for s in reversed(self.stderr_tail) if s.strip()), "")
            raise WorkerDied(
                f"worker {self.pid} crashed during {what} (exit code {code}){': ' + last if last else ''}"
            )
        return json.loads(line)

    def wait_ready(self) -> None:
        if not self._ready:
            hello = self._read(self.spec.start_timeout_s, "start-up")
            if not hello.get("ready"):
                self.kill()
                if hello.get("error"):
                    raise SandboxUnavailable(str(hello["error"]))
                raise WorkerDied(f"worker {self.pid} sent {hello!r} instead of its ready line")
            self._ready = True

    def request(self, op: str, timeout_s: float, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; WorkerDied on timeout/crash, WorkerError on refusal."""
        if self.dead:
            raise WorkerDied(f"worker {self.pid} is dead")
        self.wait_ready()
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._read(1.0, op)  # the pump has seen EOF: report the crash with its exit code
        reply = self._read(timeout_s, op)
        if not reply.get("ok"):
            raise WorkerError(str(reply.get("error", "unknown worker error")))
        return reply

    def kill(self) -> None:
        self.dead = True
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def shutdown(self) -> None:
        if not self.dead and self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "shutdown"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class WorkerPool:
    """Workers handed to episodes, one per live episode; thread-safe; at most `max_workers` alive at once.

    `acquire` gives an idle worker or starts a new one; when `max_workers` are busy it waits up to `wait_s` and
    then raises RuntimeError (a batched runner with more live episodes than workers must run them in chunks).
    `discard` drops a dead worker and starts a replacement in its place.
    """

    def __init__(
        self,
        python: str,
        data_root: str,
        max_workers: int = 8,
        memory_mb: int = 8192,
        wait_s=120.0,
        sandbox: str = "landlock",
    ):
        self.scratch = tempfile.mkdtemp(prefix="sgcd-appworld-")
        os.symlink(os.path.join(os.path.abspath(data_root), "data"), os.path.join(self.scratch, "data"))
        self.spec = WorkerSpec(
            python=python, data_root=data_root, scratch=self.scratch, memory_mb=memory_mb, sandbox=sandbox
        )
        self.max_workers = max_workers
        self.wait_s = wait_s
        self._idle: list[WorkerClient] = []
        self._busy: set[WorkerClient] = set()
        self._cv = threading.Condition()
        self.replaced = 0  # workers started to replace dead ones (diagnostics)
        self.closed = False

    @property
    def pids(self) -> list[int]:
        with self._cv:
            return [w.pid for w in [*self._idle, *self._busy]]

    def warm(self, n: int) -> None:
        """Start `n` idle workers now (they import appworld in parallel)."""
        with self._cv:
            while len(self._idle) + len(self._busy) < min(n, self.max_workers):
                self._idle.append(WorkerClient(self.spec))

    def acquire(self) -> WorkerClient:
        with self._cv:
            if self.closed:
                raise RuntimeError("the AppWorld worker pool is closed")
            ok = self._cv.wait_for(
                lambda: self._idle or len(self._busy) < self.max_workers, timeout=self.wait_s
            )
            if not ok:
                raise RuntimeError(
                    f"all {self.max_workers} AppWorld workers stayed busy for {self.wait_s:g}s: raise the workers option "
                    "or run fewer episodes at once (sgcd eval --batch-size)"
                )
            worker = self._idle.pop() if self._idle else WorkerClient(self.spec)
            self._busy.add(worker)
            return worker

    def release(self, worker: WorkerClient) -> None:
        with self._cv:
            self._busy.discard(worker)
            if worker.dead or self.closed:
                worker.kill()
            else:
                self._idle.append(worker)
            self._cv.notify()

    def discard(self, worker: WorkerClient) -> None:
        """Drop a dead (or suspect) worker and start a replacement so the pool keeps its size."""
        worker.kill()
        with self._cv:
            self._busy.discard(worker)
            if not self.closed:
                self._idle.append(WorkerClient(self.spec))
                self.replaced += 1
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            workers, self._idle, self._busy = [*self._idle, *self._busy], [], set()
        for w in workers:
            w.shutdown()
        shutil.rmtree(self.scratch, ignore_errors=True)

"""Matched comparisons: the same preset, tasks, seeds and budget, one run per (arm, seed), then the study's
tables and learning curves. An arm is an algorithm name or a named variant (ARM_VARIANTS: `sgcd-shuffle`, the
control).

DIR/study.json             what the study is (arms, seeds, preset, overrides); `--resume` continues from it
DIR/eval_before.json       the starting policy's held-out evaluation, made once and reused by every run
DIR/<arm>-s<seed>/         one ordinary run folder each (a finished run is reused, a killed one resumed)
DIR/logs/, DIR/configs/    with --jobs > 1: each run's output and the config it was started with
DIR/compare.json           the command, arms, seeds, missing and failed runs, and per run its paths and final
                           figures (success before/after, the health rates of HEALTH_KEYS, wall time)
DIR/compare.md             the study (sgcd.report.study.write_study): status, verdicts, per-arm tables
DIR/curves.png             its learning curves (held-out and training success, writes per episode)

compare.md and curves.png are rewritten after every run, so a running study shows its progress. The tables,
statistics (CIs over seeds, paired tests, verdicts) and curves are sgcd.report.study's alone; `sgcd report DIR`
shows the same on the HTML page.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from sgcd.files import write_atomic_text
from sgcd.trainer.checkpoint import latest_checkpoint
from sgcd.trainer.config import RunConfig

# column -> candidate metric names in the evaluation result (first one present wins)
HEALTH_KEYS = {
    "state_changing_rate": ("write_share",),  # episodes with >= 1 successful state-changing call
    "answer_only_rate": ("answer_only_share",),  # episodes with no tool call at all
    "tool_error_rate": ("tool_error_rate",),  # failed calls / all calls
}


# Arms beyond the algorithm names: label -> (algorithm, dotted overrides). `sgcd-shuffle` is the falsification
# control: SGCD with each trajectory's weights shuffled (same distribution, no position information).
ARM_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgcd-shuffle": ("sgcd", {"credit.shuffle": True}),
}


class CompareError(ValueError):
    """A study that cannot start or continue; the message is one line."""


def arm_names() -> list[str]:
    from sgcd.trainer.config import ALGORITHMS

    return [*ALGORITHMS, *ARM_VARIANTS]


def run_name(algorithm: str, seed: int) -> str:
    return f"{algorithm}-s{seed}"


def arm_config(base: RunConfig, arm: str, seed: int) -> RunConfig:
    """The run config of one (arm, seed): the base with algorithm.name, seed and the arm's overrides."""
    algo, overrides = ARM_VARIANTS.get(arm, (arm, {}))
    cfg = replace(base, seed=seed, algorithm=replace(base.algorithm, name=algo))
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{key: value})})
    return cfg


def plan(base: RunConfig, algorithms: list[str], seeds: list[int]) -> list[tuple[str, int, RunConfig]]:
    """Matched configs: only the arm (algorithm.name and the arm's overrides) and the seed differ between runs."""
    return [
        (a, s, arm_config(base, a, s)) for s in seeds for a in algorithms
    ]  # seed-major: a cut study stays balanced


def study_spec(algorithms: list[str], seeds: list[int], preset: str, overrides: list[str]) -> dict[str, Any]:
    return {"algorithms": algorithms, "seeds": seeds, "preset": preset, "overrides": list(overrides)}


def open_study(out: Path, spec: dict[str, Any], resume: bool) -> dict[str, Any]:
    """DIR/study.json records what the study is. The same request again continues it (finished runs are kept,
    killed ones resumed); `--resume` continues it with the recorded arms, seeds, preset and overrides; a
    different request for a folder that holds a study is refused, naming what differs."""
    path = Path(out) / "study.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        differ = sorted(k for k in spec if spec[k] != saved.get(k))
        if differ and not resume:
            raise CompareError(
                f"{out} already holds a different study ({', '.join(f'{k}={saved.get(k)}' for k in differ)}); "
                "add --resume to continue it as recorded, or choose another --out"
            )
        return saved
    if resume:
        raise CompareError(f"--resume: {out} holds no study (no study.json); start it without --resume")
    Path(out).mkdir(parents=True, exist_ok=True)
    write_atomic_text(path, json.dumps(spec, indent=2) + "\n")
    return spec


def run_all(
    base: RunConfig,
    algorithms: list[str],
    seeds: list[int],
    out: Path,
    quiet: bool = True,
    jobs: int = 1,
    command: str = "",
) -> dict:
    """Train every (arm, seed) run not finished yet, then write the table, curves and compare.json.

    The before-training evaluation is made once (all arms start from the same weights) into
    DIR/eval_before.json and reused by every run. jobs > 1 runs that many `sgcd train` processes at once, the
    CPU threads split between them; their output goes to DIR/logs/<run>.log. A failed run is reported and the
    others go on; finished runs are reused and killed ones resumed, so re-running continues the study."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if base.eval.before and not base.eval.before_file:
        base = replace(base, eval=replace(base.eval, before_file=str(out.resolve() / "eval_before.json")))
    todo = plan(base, algorithms, seeds)
    if base.eval.before and not Path(base.eval.before_file).is_file() and jobs > 1:
        _evaluate_before(todo[0][2], out, quiet)  # once, with every thread, before the runs split them
    failures: dict[str, str] = {}
    _write(out, _records(out, todo), algorithms, seeds, {}, command)  # a study folder from the start
    if jobs <= 1:
        for algo, seed, cfg in todo:
            try:
                _run_in_process(cfg, out / run_name(algo, seed), quiet)
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                failures[run_name(algo, seed)] = f"{type(exc).__name__}: {exc}"
                print(
                    f"[compare] {run_name(algo, seed)} failed: {failures[run_name(algo, seed)]}", flush=True
                )
            _write(out, _records(out, todo), algorithms, seeds, failures, command)
    else:
        failures = _run_in_processes(
            todo, out, jobs, lambda: _write(out, _records(out, todo), algorithms, seeds, {}, command)
        )
    return _write(out, _records(out, todo), algorithms, seeds, failures, command)


def _records(out: Path, todo: list[tuple[str, int, RunConfig]]) -> list[dict]:
    runs = []
    for algo, seed, _ in todo:
        run_dir = out / run_name(algo, seed)
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            runs.append(_run_record(algo, seed, run_dir, json.loads(summary_path.read_text())))
    return runs


def _evaluate_before(cfg: RunConfig, out: Path, quiet: bool) -> None:
    """The starting policy's evaluation, in a child process (so this long-lived parent does not keep the
    evaluation's memory for the whole study), with every thread, into cfg.eval.before_file."""
    import multiprocessing

    print(f"[compare] evaluating the starting policy once -> {cfg.eval.before_file}", flush=True)
    child = multiprocessing.get_context("spawn").Process(target=_before_child, args=(cfg, str(out), quiet))
    child.start()
    child.join()
    if child.exitcode != 0 or not Path(cfg.eval.before_file).is_file():
        raise CompareError(
            f"the before-training evaluation failed (exit {child.exitcode}); see the output above"
        )


def _before_child(cfg: RunConfig, out: str, quiet: bool) -> None:
    import shutil

    from sgcd.trainer.trainer import Trainer

    scratch = Path(out) / ".eval_before"
    shutil.rmtree(scratch, ignore_errors=True)
    trainer = Trainer(cfg, scratch, quiet=quiet)
    trainer.setup()
    trainer.evaluate_before({})
    shutil.rmtree(scratch, ignore_errors=True)


def _next(run_dir: Path) -> str:
    """What a run folder needs: "done" (summary.json), "resume" (a checkpoint) or "start" (nothing usable; a
    run killed before its first checkpoint is removed and started again)."""
    if (run_dir / "summary.json").is_file():
        return "done"
    if run_dir.exists() and latest_checkpoint(run_dir) is not None:
        return "resume"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    return "start"


def _run_in_process(cfg: RunConfig, run_dir: Path, quiet: bool) -> dict:
    from sgcd.trainer.trainer import resume, train

    action = _next(run_dir)
    if action == "done":
        return json.loads((run_dir / "summary.json").read_text())
    if action == "resume":
        print(f"[compare] {run_dir.name}: resuming", flush=True)
        return resume(run_dir, quiet=quiet)
    print(f"[compare] {run_dir.name} ...", flush=True)
    return train(cfg, run_dir, quiet=quiet)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_in_processes(
    todo: list[tuple[str, int, RunConfig]], out: Path, jobs: int, on_finish: Any
) -> dict[str, str]:
    """Run the unfinished runs as `python -m sgcd train` processes, `jobs` at a time, each with
    cores // jobs threads (OMP/MKL_NUM_THREADS, which torch reads at start-up)."""
    import subprocess
    import sys
    import time

    from sgcd.trainer.config import save_config

    threads = max(1, _cores() // jobs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    (out / "logs").mkdir(exist_ok=True)
    (out / "configs").mkdir(exist_ok=True)
    queue = []
    for algo, seed, cfg in todo:
        name, run_dir = run_name(algo, seed), out / run_name(algo, seed)
        action = _next(run_dir)
        if action == "done":
            continue
        if action == "resume":
            args = ["--resume", str(run_dir)]
        else:
            save_config(cfg, out / "configs" / f"{name}.yaml")
            args = ["--preset", str(out / "configs" / f"{name}.yaml"), "--out", str(run_dir)]
        queue.append((name, [sys.executable, "-m", "sgcd", "train", "--quiet", *args]))
        if args[0] == "--resume":
            print(f"[compare] {name}: resuming from its last checkpoint", flush=True)
    print(f"[compare] {len(queue)} runs to do, {jobs} at a time, {threads} thread(s) each", flush=True)
    running: dict[str, tuple[Any, Any, float]] = {}
    failures: dict[str, str] = {}

    def stop(signum: int, frame: Any) -> None:  # a killed study stops its runs too (they resume next time)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                name, cmd = queue.pop(0)
                log = open(out / "logs" / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
                running[name] = (
                    subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                    log,
                    time.time(),
                )
                print(f"[compare] {name} started (log: {out / 'logs' / (name + '.log')})", flush=True)
            time.sleep(2.0)
            for name, (proc, log, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                if proc.returncode == 0:
                    print(f"[compare] {name} finished in {time.time() - t0:.0f} s", flush=True)
                else:
                    failures[name] = f"exit {proc.returncode}; see {out / 'logs' / (name + '.log')}"
                    print(f"[compare] {name} failed: {failures[name]}", flush=True)
                on_finish()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc, log, _ in running.values():  # interrupted: stop the children, they resume next time
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return failures


def _pick(metrics: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        if isinstance(metrics.get(name), (int, float)):
            return float(metrics[name])
    return None


def _run_record(algo: str, seed: int, run_dir: Path, summary: dict) -> dict:
    after = summary.get("eval_after") or {}
    rec = {
        "algorithm": algo,
        "seed": seed,
        "run_dir": str(run_dir),
        "summary": str(run_dir / "summary.json"),
        "metrics": str(run_dir / "metrics.jsonl"),
        "final_model": summary.get("final_model"),
        "success_before": summary.get("success_before"),
        "success_after": summary.get("success_after"),
        "wall_s": summary.get("wall_s"),
    }
    for column, names in HEALTH_KEYS.items():
        rec[column] = _pick(after, names)
    return rec


def _write(
    out: Path,
    runs: list[dict],
    algorithms: list[str],
    seeds: list[int],
    failures: dict[str, str] | None = None,
    command: str = "",
) -> dict:
    """DIR/compare.json, then the study's tables and curves (sgcd.report.study, their one owner) as
    DIR/compare.md and DIR/curves.png. A plotting failure keeps the table and compare.json ("plot_error")."""
    from sgcd.report.study import write_study

    done = {run_name(r["algorithm"], r["seed"]) for r in runs}
    result = {
        "command": command,
        "algorithms": algorithms,
        "seeds": seeds,
        "missing": [run_name(a, s) for a in algorithms for s in seeds if run_name(a, s) not in done],
        "failures": failures or {},
        "runs": runs,
    }
    write_atomic_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    analysis, _ = write_study(out, out / "compare.md", out / "curves.png")
    if analysis.curves_error:
        result["plot_error"] = analysis.curves_error
        write_atomic_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    return result

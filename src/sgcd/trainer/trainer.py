"""The single-machine reference trainer: set up a run from a RunConfig, loop over steps, evaluate, checkpoint,
resume, and save the final student as a plain Hugging Face model.

`train(cfg, out)` starts a run; `resume(run_dir)` continues one from its last checkpoint. Both return the
summary dict (also written to RUN_DIR/summary.json). Every step appends one line to RUN_DIR/metrics.jsonl.
Evaluation goes through `sgcd.eval.evaluate` with a `PolicyRunner` on the clean prompt (the path users call),
so it cannot reach the credit reference. The final evaluation loads the saved student from RUN_DIR/final.

Errors a user can cause (missing model, unreachable summarizer endpoint, a full disk at checkpoint time) raise
`TrainError` with one line; the run folder is left consistent: no half-written checkpoint, no summary claiming a
finished run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgcd.files import write_atomic_text
from sgcd.rollout.sampling import TaskSampler
from sgcd.trainer import checkpoint as ckpt
from sgcd.trainer import preflight, rundir
from sgcd.trainer.config import RunConfig, load_config, save_config, to_dict
from sgcd.trainer.logging import JsonlLogger, Logger, MultiLogger, StdoutLogger, read_jsonl
from sgcd.trainer.loop.step import StepContext, StepOutput, run_step
from sgcd.trainer.progress import Progress
from sgcd.trainer.runs import prepare_run_dir, write_samples, write_summary
from sgcd.trainer.samples import sample_rows
from sgcd.trainer.setup import (
    FallbackWatch,
    TrainError,
    check_summarizer_endpoint,
    evaluate_policy,
    load_models,
    make_optimizer,
    make_summarizer_for,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        quiet: bool = False,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg, self.run_dir, self.resuming, self.quiet = cfg, Path(run_dir), resume, quiet
        self.allow_config_change = allow_config_change
        self.logger: Logger | None = None
        self.jsonl: JsonlLogger | None = None

    # ---- set-up ----------------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        from sgcd.policy.base import SamplingParams
        from sgcd.rollout import RolloutLimits

        self.domain = preflight.build_domain(
            cfg
        )  # a bad env name, option or split fails before the model loads
        self.policy, self.ref_policy, self.model_path = load_models(cfg)
        train_tasks = self.domain.tasks(cfg.env.train_split)
        self.sampler = TaskSampler(train_tasks, cfg.seed)
        self.optimizer, self.scheduler = make_optimizer(cfg, self.policy.model)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.summarizer, self.summarizer_cache = make_summarizer_for(cfg, self.run_dir)
        self.fallback_watch = FallbackWatch(cfg)
        s = cfg.sampling
        self.ctx = StepContext(
            cfg=cfg,
            policy=self.policy,
            domain=self.domain,
            sampler=self.sampler,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            sampling_params=SamplingParams(
                temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens
            ),
            limits=RolloutLimits(max_turns=s.max_turns, max_tokens=s.max_tokens, pause_share=s.pause_share),
            generator=self.generator,
            summarizer=self.summarizer,
            ref_policy=self.ref_policy,
        )

    def generators(self) -> dict[str, torch.Generator]:
        return {
            "policy": self.policy.generator,
            "trainer": self.generator,
            "shuffle": self.ctx.shuffle_generator,
        }

    def open_loggers(self) -> None:
        self.jsonl = JsonlLogger(self.run_dir / "metrics.jsonl")
        sinks: list[Logger] = [self.jsonl]
        lg = self.cfg.logging
        if lg.stdout:
            sinks.append(StdoutLogger())
        if lg.tensorboard:
            from sgcd.trainer.logging import TensorBoardLogger

            sinks.append(TensorBoardLogger(self.run_dir / "tb"))
        if lg.wandb:
            from sgcd.trainer.logging import WandbLogger

            sinks.append(WandbLogger(lg.wandb_project, self.run_dir, to_dict(self.cfg)))
        self.logger = MultiLogger(sinks)

    # ---- the loop --------------------------------------------------------------------------------------------
    def run(self, state: ckpt.TrainState | None = None) -> dict[str, Any]:
        """Train to cfg.steps from `state` (a restored checkpoint's, see `restore`) or from step 0."""
        cfg, t_start = self.cfg, time.perf_counter()
        if state is None:
            state = ckpt.TrainState(summarizer_cache=self.summarizer_cache)
        state.config_hash, state.config = rundir.config_hash(cfg), rundir.config_dict(cfg)
        self.open_loggers()
        extra = state.extra
        if not self.resuming and cfg.eval.before:
            extra["eval_before_tasks"] = {}
            extra["eval_before"] = self.evaluate_before(extra["eval_before_tasks"])
            self.logger.log({f"eval/{k}": v for k, v in extra["eval_before"].items()}, 0)
        extra.setdefault("wall_s_before", 0.0)
        last_out: StepOutput | None = None
        progress = Progress(cfg.steps, start=state.step, enabled=cfg.logging.progress and not self.quiet)
        eval_after: dict[str, float] | None = None
        with progress:
            for step in range(state.step + 1, cfg.steps + 1):
                t0 = time.perf_counter()
                out = run_step(self.ctx)
                metrics = out.metrics
                if not out.skipped:
                    last_out = out
                    extra["credit_last"] = {k: v for k, v in metrics.items() if k.startswith("credit/w")}
                extra["skipped_steps"] = extra.get("skipped_steps", 0) + int(out.skipped)
                is_last = step == cfg.steps
                if cfg.eval.every and step % cfg.eval.every == 0 and not is_last:
                    metrics.update({f"eval/{k}": v for k, v in self._evaluate(step, "during").items()})
                    self._write_samples(step, last_out)
                metrics["time/step_s"] = time.perf_counter() - t0
                self.logger.log(metrics, step)
                progress.update(step, metrics)
                self.fallback_watch.update(metrics)
                state.step, state.sampler = step, self.sampler.state_dict()
                state.metrics_offset = self.jsonl.offset()
                if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and not is_last:
                    self._checkpoint(state, t_start)
        self.fallback_watch.update({}, final=True)
        self._write_samples(cfg.steps, last_out)
        final_dir = self.save_final()
        after_tasks: dict[str, float] = {}
        eval_after = self._evaluate_saved(final_dir, after_tasks)
        self.logger.log({f"eval/{k}": v for k, v in eval_after.items()}, cfg.steps)
        state.metrics_offset = self.jsonl.offset()
        extra["wall_s"] = extra.get("wall_s_before", 0.0) + time.perf_counter() - t_start
        self._checkpoint(state, t_start)
        summary = self._summary(extra, eval_after, final_dir)
        summary.update(paired_summary(extra.get("eval_before_tasks"), after_tasks))
        summary["eval_before_tasks"] = extra.get("eval_before_tasks") or {}
        summary["eval_after_tasks"] = after_tasks
        write_summary(self.run_dir, summary)
        if not self.quiet and summary.get("eval_delta") is not None:
            print(describe_delta(summary), flush=True)
        self.logger.close()
        return summary

    def _checkpoint(self, state: ckpt.TrainState, t_start: float) -> None:
        state.extra["wall_s_before"] = state.extra.get("wall_s_before", 0.0)
        saved = dict(state.extra)
        saved["wall_s_before"] = state.extra["wall_s_before"] + time.perf_counter() - t_start
        snapshot = replace(state, extra=saved)
        try:
            ckpt.save_checkpoint(
                self.run_dir,
                snapshot,
                self.policy.model,
                self.optimizer,
                self.scheduler,
                self.cfg.checkpoint.keep_last,
                self.generators(),
                tokenizer=self.policy.tokenizer,
            )
        except ckpt.CheckpointError as exc:
            raise TrainError(str(exc)) from exc

    def restore(self) -> ckpt.TrainState:
        """Load the newest intact checkpoint (falling back past damaged ones, saying so), check its config, and
        cut metrics.jsonl back to it."""
        found = ckpt.list_checkpoints(self.run_dir)
        if not found:
            raise TrainError(f"{self.run_dir} has no complete checkpoint to resume from")
        state, errors = None, []
        for path in reversed(found):
            try:
                state = ckpt.load_checkpoint(
                    path, self.policy.model, self.optimizer, self.scheduler, self.generators()
                )
                break
            except ckpt.CheckpointError as exc:
                errors.append(str(exc))
                self._say(f"{exc}; trying the checkpoint before it")
        if state is None:
            raise TrainError(
                errors[0] if len(errors) == 1 else f"no checkpoint of {self.run_dir} can be read: {errors[0]}"
            )
        if errors:
            self._say(f"falling back to {path.name}: the newer checkpoint is damaged")
        try:
            changed = rundir.check_config(state, self.cfg, path, self.allow_config_change)
        except rundir.RunDirError as exc:
            raise TrainError(str(exc)) from exc
        if changed:
            self._apply_config_change(changed)
        self.sampler.load_state_dict(state.sampler)
        note = rundir.repair_metrics(self.run_dir / "metrics.jsonl", state.metrics_offset)
        if note:
            self._say(note)
        (self.run_dir / "summary.json").unlink(missing_ok=True)  # the run is not finished any more
        self._say(f"resuming {self.run_dir} from {path.name} (step {state.step} of {self.cfg.steps})")
        return state

    def _apply_config_change(self, changed: list[str]) -> None:
        """--allow-config-change: the edited optimizer settings take effect (the loaded state would keep the old)."""
        o = self.cfg.optim
        fresh = make_optimizer(self.cfg, self.policy.model)[1]  # the new schedule's factor function
        for group in self.optimizer.param_groups:
            group.update(initial_lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        self.scheduler.base_lrs = [o.lr] * len(self.optimizer.param_groups)
        self.scheduler.lr_lambdas = fresh.lr_lambdas
        step = self.scheduler.last_epoch
        for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
            group["lr"] = o.lr * factor(step)
        self._say(f"continuing with the edited config (changed: {', '.join(changed[:6])})")

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    # ---- evaluation, samples, final model ---------------------------------------------------------------------
    def _evaluate(self, step: int, when: str, tasks_out: dict[str, float] | None = None) -> dict[str, float]:
        result = evaluate_policy(self.policy, self.domain, self.cfg, tasks_out)
        if not self.quiet and when == "before":
            print(
                f"held-out success before training: {result['success']:.3f} ({int(result['n'])} episodes)",
                flush=True,
            )
        return result

    def evaluate_before(self, tasks_out: dict[str, float]) -> dict[str, float]:
        """The before-training evaluation, or the one stored in cfg.eval.before_file when that file exists and
        was made from the same model, domain and evaluation settings (a mismatch is a TrainError naming them).
        With before_file set and no file yet, evaluate and write it (`sgcd compare` does this once per study)."""
        path = Path(self.cfg.eval.before_file) if self.cfg.eval.before_file else None
        key = before_key(self.cfg, self.model_path)
        if path is not None and path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            diff = sorted(
                k for k in set(key) | set(stored.get("key", {})) if key.get(k) != stored["key"].get(k)
            )
            if diff:
                raise TrainError(
                    f"eval.before_file {path} was made with different {', '.join(diff)}; delete it or unset it"
                )
            tasks_out.update(stored["tasks"])
            self._say(
                f"held-out success before training: {stored['metrics']['success']:.3f} "
                f"({int(stored['metrics']['n'])} episodes, reused from {path})"
            )
            return dict(stored["metrics"])
        result = self._evaluate(0, "before", tasks_out)
        if path is not None:
            doc = {"key": key, "metrics": result, "tasks": tasks_out}
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return result

    def _evaluate_saved(self, final_dir: Path, tasks_out: dict[str, float]) -> dict[str, float]:
        from sgcd.policy.models import load_policy

        if hasattr(self.policy, "clear_caches"):  # the training policy's caches are not needed now
            self.policy.clear_caches()
        student = load_policy(
            str(final_dir), device=self.cfg.model.device, dtype=self.cfg.model.dtype, seed=self.cfg.seed
        )
        student.set_autocast(self.cfg.model.autocast)
        result = evaluate_policy(student, self.domain, self.cfg, tasks_out)
        del student
        return result

    def _write_samples(self, step: int, out: StepOutput | None) -> None:
        n = self.cfg.logging.sample_groups
        if out is None or n == 0 or out.batch is None:
            return
        write_samples(
            self.run_dir,
            step,
            sample_rows(out, step, self.policy.tokenizer, n),
            self.cfg.logging.keep_samples,
        )

    def save_final(self) -> Path:
        """RUN_DIR/final: model + tokenizer, written to a temp folder and renamed (from_pretrained-loadable)."""
        final = self.run_dir / "final"
        tmp = self.run_dir / f".final.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            from sgcd.policy.trainable import save_trained

            save_trained(self.policy, tmp)  # merged plain HF folder (+ adapter/ with LoRA)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TrainError(f"saving the final model to {final} failed: {exc}") from exc
        return final

    def _summary(self, extra: dict, eval_after: dict[str, float], final_dir: Path) -> dict[str, Any]:
        before = extra.get("eval_before") or {}
        rows = read_jsonl(self.run_dir / "metrics.jsonl")
        return {
            "run_dir": str(self.run_dir),
            "algorithm": self.cfg.algorithm.name,
            "model": self.cfg.model.name,
            "model_path": str(self.model_path),
            "env": self.cfg.env.name,
            "seed": self.cfg.seed,
            "steps": self.cfg.steps,
            "skipped_steps": extra.get("skipped_steps", 0),
            "wall_s": round(extra.get("wall_s", 0.0), 2),
            "success_before": before.get("success"),
            "success_after": eval_after.get("success"),
            "eval_before": before,
            "eval_after": eval_after,
            "credit_last": extra.get("credit_last", {}),
            "metric_rows": len(rows),
            "final_model": str(final_dir),
            "metrics": str(self.run_dir / "metrics.jsonl"),
            "summarizer_cache": self.summarizer_cache,
        }


def paired_summary(before: dict[str, float] | None, after: dict[str, float]) -> dict[str, Any]:
    """summary.json's paired before/after statistics on the same held-out tasks (sgcd.eval.stats)."""
    if not before or not after:
        return {"eval_delta": None, "eval_delta_ci": None, "eval_p": None}
    from sgcd.eval.stats import paired_delta

    d = paired_delta(before, after)
    return {
        "eval_delta": d["delta"],
        "eval_delta_ci": d["ci"],
        "eval_p": d["p"],
        "eval_paired": {k: d[k] for k in ("n", "before", "after", "lost", "gained")},
    }


def before_key(cfg: RunConfig, model_path: Any) -> dict[str, Any]:
    """What a before-training evaluation depends on: the starting weights (path, size and mtime of each weights
    file), the domain and split, the evaluation and episode-limit settings, autocast; the seed only when the
    evaluation samples (temperature > 0)."""
    folder = Path(str(model_path))
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
    e, s = cfg.eval, cfg.sampling
    return {
        "model_path": str(model_path),
        "weights": [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights],
        "env": f"{cfg.env.name} {json.dumps(cfg.env.options, sort_keys=True)} {cfg.env.eval_split}",
        "eval": f"limit={e.limit} trials={e.trials} temperature={e.temperature} batch_size={e.batch_size}",
        "limits": f"max_new_tokens={s.max_new_tokens} max_turns={s.max_turns} max_tokens={s.max_tokens}",
        "autocast": cfg.model.autocast,
        "seed": cfg.seed if e.temperature > 0 else None,
    }


def describe_delta(summary: dict[str, Any]) -> str:
    p = summary["eval_paired"]
    lo, hi = summary["eval_delta_ci"]
    return (
        f"held-out success {p['before']:.3f} -> {p['after']:.3f} on {int(p['n'])} tasks: "
        f"delta {summary['eval_delta']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, McNemar exact p = "
        f"{summary['eval_p']:.3g}; {int(p['gained'])} tasks gained, {int(p['lost'])} lost)"
    )


def train(cfg: RunConfig, out: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Start a new run in `out` (empty or absent). Fails before touching `out` on a bad model or endpoint."""
    out = Path(out)
    preflight.check(cfg, out)
    check_summarizer_endpoint(cfg)
    trainer = Trainer(cfg, out, quiet=quiet)
    try:
        trainer.setup()
    except FileNotFoundError as exc:
        raise TrainError(str(exc).splitlines()[0]) from exc
    try:
        prepare_run_dir(out)
    except FileExistsError as exc:
        raise TrainError(str(exc)) from exc
    except OSError as exc:
        raise TrainError(rundir.os_error_line(exc, f"creating {out}")) from exc
    with _locked(out):
        save_config(cfg, out / "config.yaml")
        return _guarded(trainer.run, out)


def resume(
    run_dir: Path, *, steps: int | None = None, quiet: bool = False, allow_config_change: bool = False
) -> dict[str, Any]:
    """Continue the run in `run_dir` from its latest checkpoint, with its saved config (optionally more steps).

    A run killed before its first checkpoint starts over from step 0; a finished run is left as it is (the
    summary is returned with "already_finished"); config.yaml is rewritten (steps=N) only once the checkpoint
    has loaded."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TrainError(f"{run_dir} is not a run folder (no config.yaml)")
    with _locked(run_dir):
        cfg = load_config(run_dir / "config.yaml")
        if steps is not None and steps != cfg.steps:
            cfg = replace(cfg, steps=steps)
        try:
            plan = rundir.plan_resume(run_dir, cfg, steps, allow_config_change)
        except rundir.RunDirError as exc:
            raise TrainError(str(exc)) from exc
        if plan.finished:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            summary["already_finished"] = True
            return summary
        preflight.check(cfg, run_dir)
        check_summarizer_endpoint(cfg)
        trainer = Trainer(
            cfg, run_dir, resume=not plan.restart, quiet=quiet, allow_config_change=allow_config_change
        )
        try:
            trainer.setup()
        except FileNotFoundError as exc:
            raise TrainError(str(exc).splitlines()[0]) from exc
        state = None
        if plan.restart:
            rundir.reset_for_restart(run_dir)
            trainer._say(f"{run_dir} has no checkpoint yet (killed before its first one): starting it over")
        else:
            state = _guarded(trainer.restore, run_dir)
        save_config(cfg, run_dir / "config.yaml")  # only now: the resume is known to work
        return _guarded(lambda: trainer.run(state), run_dir)


class _locked:
    """Hold the run folder's lock for the life of the run (a second writer gets one line naming our pid)."""

    def __init__(self, run_dir: Path) -> None:
        self.lock = rundir.RunLock(run_dir)

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except rundir.RunDirError as exc:
            raise TrainError(str(exc)) from exc
        except OSError as exc:
            raise TrainError(rundir.os_error_line(exc, f"locking {self.lock.run_dir}")) from exc

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def _guarded(fn: Any, run_dir: Path) -> Any:
    """Run `fn`; a file-system error while writing the run folder becomes one line (a full disk named so)."""
    try:
        return fn()
    except OSError as exc:
        raise TrainError(rundir.os_error_line(exc, f"writing {run_dir}")) from exc

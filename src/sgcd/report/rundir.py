"""Reading a run folder for the report: config, metrics, summary and the sampled mixed groups.

The run-folder contract (written by the trainer):

    RUN_DIR/config.yaml                 the resolved run config
    RUN_DIR/metrics.jsonl               one JSON object per step: {"step": int, "<namespace>/<key>": number, ...}
    RUN_DIR/summary.json                final figures
    RUN_DIR/samples/step_XXXXXX.jsonl   one JSON line per sampled mixed group (siblings with per-token data)

A sibling is the one episode JSON (`sgcd.episode_io.trajectory_record`: outcome, text-level episode, token ids,
mask, turn ids, types) plus the trainer's extras (advantage, decoded tokens, weights, teacher and student
log-probs); records of a version newer than episode_io reads are refused, older ones read as they are.

Everything except `metrics.jsonl` may be missing (a run still in progress has no summary; a GRPO run may have
no samples): the report says so instead of failing. Malformed input raises `RunDirError` with one line naming
the file, the line and the field. Metric keys are treated generically: any numeric value is a series.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgcd.episode_io import record_version

DEFAULT_EPS = 0.2  # algorithm.md §5: eps = 0.2 unless the config says otherwise


class RunDirError(ValueError):
    """A missing or malformed run-folder file; the message names the file, line and field."""


@dataclass
class Sibling:
    """One trajectory of a sampled group, as the report reads it (per-token lists all have length T)."""

    reward: float
    success: bool
    advantage: float
    tokens: list[str]  # decoded string per trajectory token
    action_mask: list[int]  # 1 on sampled (trained) tokens
    token_types: list[int]  # 0 observation, 1 reasoning, 2 tool_call, 3 answer
    weights: list[float]  # credit weight w_t (1.0 where the trainer does not reweight)
    teacher_logprobs: list[float]
    student_logprobs: list[float]
    turn_ids: list[int]
    token_ids: list[int]
    episode_lines: list[str] = field(default_factory=list)  # short text-level facts: calls, ending, verifier


def episode_lines(episode: Any) -> list[str]:
    """A few short lines from a text-level episode dict: the calls in order (x = error, w = state-changing),
    how it ended and what the verifier said. Unknown shapes give no lines rather than an error."""
    if not isinstance(episode, dict):
        return []
    lines = []
    calls = []
    for step in episode.get("steps") or []:
        for call in (step.get("calls") or []) if isinstance(step, dict) else []:
            if isinstance(call, dict):
                mark = " [x]" if call.get("error") else (" [w]" if call.get("is_write") else "")
                calls.append(f"{call.get('name', '?')}{mark}")
    lines.append("calls: " + (" -> ".join(calls) if calls else "none"))
    info = episode.get("info") if isinstance(episode.get("info"), dict) else {}
    if "reason" in info:
        lines.append(f"ended: {info['reason']}")
    verifier = info.get("verifier")
    if isinstance(verifier, dict):
        facts = [f"{k}={v}" for k, v in verifier.items() if isinstance(v, (bool, int, float, str))]
        if facts:
            lines.append("verifier: " + ", ".join(facts))
    return lines


@dataclass
class Group:
    """One sampled mixed group: its task, credit reference and G siblings."""

    step: int
    task_id: str
    instruction: str
    reference: dict | None  # the credit reference dict, or None (no reference / fallback failed)
    reference_text: str
    siblings: list[Sibling]
    source: str  # "samples/step_000010.jsonl:3", for error messages and the page


@dataclass
class RunData:
    """Everything the report shows about one run."""

    run_dir: Path
    config: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)  # one dict per logged step, in file order
    summary: dict = field(default_factory=dict)
    sample_files: list[Path] = field(default_factory=list)  # sorted by step
    notes: list[str] = field(default_factory=list)  # what was missing, shown on the page

    @property
    def eps(self) -> float:
        """credit.eps from the config (the weight bound), or the paper's 0.2 when absent."""
        value = (self.config.get("credit") or {}).get("eps", DEFAULT_EPS)
        return float(value) if isinstance(value, (int, float)) else DEFAULT_EPS

    @property
    def algorithm(self) -> str:
        return str((self.config.get("algorithm") or {}).get("name", "?"))


def _read_json_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a truncated last line (run still writing) is skipped."""
    out: list[tuple[int, dict]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # a half-written last line of a live run
                continue
            raise RunDirError(f"{path}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise RunDirError(f"{path}: line {number} is not a JSON object")
        out.append((number, obj))
    return out


def read_metrics(path: Path) -> list[dict]:
    """The metric rows of metrics.jsonl; each must carry an integer "step"; non-numeric values are dropped."""
    rows = []
    for number, obj in _read_json_lines(path):
        step = obj.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            raise RunDirError(f"{path}: line {number}: field 'step' must be a number, got {step!r}")
        row = {"step": int(step)}
        for key, value in obj.items():
            if isinstance(value, bool):
                value = float(value)
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                row[key] = float(value)
        rows.append(row)
    return rows


def load_run(run_dir: Path) -> RunData:
    """Read a run folder's config, metrics and summary; sample files are listed here, read by `iter_groups`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a folder")
    data = RunData(run_dir=run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise RunDirError(f"{run_dir}: no metrics.jsonl (is this a run folder from `sgcd train`?)")
    data.metrics = read_metrics(metrics_path)
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise RunDirError(f"{config_path}: not valid YAML ({exc})") from None
        if not isinstance(config, dict):
            raise RunDirError(f"{config_path}: expected a mapping at the top level")
        data.config = config
    else:
        data.notes.append("config.yaml is missing: weight bounds use the default eps = 0.2")
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{summary_path}: not JSON ({exc.msg})") from None
        data.summary = summary if isinstance(summary, dict) else {"value": summary}
    else:
        data.notes.append("summary.json is missing (run still in progress?)")
    samples = run_dir / "samples"
    data.sample_files = sorted(samples.glob("step_*.jsonl")) if samples.is_dir() else []
    if not data.sample_files:
        data.notes.append(
            "no samples/step_*.jsonl: no token heatmaps (no mixed group sampled yet, or logging.sample_groups = 0)"
        )
    return data


def _floats(values: Any, where: str, name: str, n: int, default: float | None) -> list[float]:
    if values is None and default is not None:
        return [default] * n
    if not isinstance(values, list) or len(values) != n:
        got = f"length {len(values)}" if isinstance(values, list) else repr(type(values).__name__)
        raise RunDirError(f"{where}: field '{name}' must be a list of {n} numbers (one per token), got {got}")
    out = []
    for v in values:
        x = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")
        out.append(x)
    return out


def parse_sibling(obj: Any, where: str) -> Sibling:
    """One sibling dict -> Sibling; per-token lists must agree in length with `tokens`."""
    if not isinstance(obj, dict):
        raise RunDirError(f"{where}: expected a JSON object")
    try:
        record_version(obj)
    except ValueError as exc:
        raise RunDirError(f"{where}: {exc}") from None
    tokens = obj.get("tokens")
    if not isinstance(tokens, list):
        raise RunDirError(f"{where}: field 'tokens' must be a list of strings")
    n = len(tokens)
    mask = [int(bool(x)) for x in _floats(obj.get("action_mask"), where, "action_mask", n, 1.0)]
    types = [int(x) if x == x else 1 for x in _floats(obj.get("token_types"), where, "token_types", n, 1.0)]
    return Sibling(
        reward=float(obj.get("reward", 0.0) or 0.0),
        success=bool(obj.get("success", False)),
        advantage=float(obj.get("advantage", 0.0) or 0.0),
        tokens=[str(t) for t in tokens],
        action_mask=mask,
        token_types=types,
        weights=_floats(obj.get("weights"), where, "weights", n, 1.0),
        teacher_logprobs=_floats(obj.get("teacher_logprobs"), where, "teacher_logprobs", n, float("nan")),
        student_logprobs=_floats(obj.get("student_logprobs"), where, "student_logprobs", n, float("nan")),
        turn_ids=[int(x) if x == x else -1 for x in _floats(obj.get("turn_ids"), where, "turn_ids", n, -1.0)],
        token_ids=[
            int(x) if x == x else -1 for x in _floats(obj.get("token_ids"), where, "token_ids", n, -1.0)
        ],
        episode_lines=episode_lines(obj.get("episode")),
    )


def parse_group(obj: dict, where: str) -> Group:
    siblings = obj.get("siblings")
    if not isinstance(siblings, list) or not siblings:
        raise RunDirError(f"{where}: field 'siblings' must be a non-empty list")
    reference = obj.get("reference")
    return Group(
        step=int(obj.get("step", -1)),
        task_id=str(obj.get("task_id", "?")),
        instruction=str(obj.get("instruction", "")),
        reference=reference if isinstance(reference, dict) else None,
        reference_text=str(obj.get("reference_text", "") or ""),
        siblings=[parse_sibling(s, f"{where}: siblings[{i}]") for i, s in enumerate(siblings)],
        source=where,
    )


def read_groups(path: Path, run_dir: Path | None = None) -> list[Group]:
    """All groups of one sample file."""
    rel = path.relative_to(run_dir) if run_dir is not None else path
    return [parse_group(obj, f"{rel}:{number}") for number, obj in _read_json_lines(path)]

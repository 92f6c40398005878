"""The run configuration: one typed dataclass per component, composed into `RunConfig`.

Each field carries its documentation in `metadata["help"]` (that text is the `--help` of `sgcd train` and of
`docs/training.md`) and, where the value is a name, the allowed values in `metadata["choices"]`. A config is built
from a YAML preset (`sgcd/presets/<name>.yaml`, shipped inside the package, or a path) plus dotted overrides
(`algorithm.name=grpo credit.eps=0.1`).
Unknown keys and invalid values raise `ConfigError` with one line naming the field and what is allowed.

Core functions never see these objects: the trainer unpacks plain numbers from them at the call site.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgcd.algorithm import (
    ADVANTAGES,
    ALGORITHMS,
    TEACHERS,
    Algorithm,
    CreditSpec,
    credit_problems,
    loss_problems,
)
from sgcd.rollout.loop import RolloutLimits

_CREDIT = CreditSpec()  # the credit defaults live in sgcd.algorithm (TRL and verl read the same ones)
_LIMITS = RolloutLimits()  # the episode limits' defaults live with the rollout (TRL and verl read them too)
# Keys an older config (a run directory's config.yaml) may carry that no longer exist, with the only value they
# could hold: dropped on load. credit.divergence had one allowed value (logratio) and was read nowhere.
RETIRED = {("credit", "divergence"): "logratio"}
# The presets ship inside the package (sgcd/presets/*.yaml), so an installed wheel has them too.
PRESET_DIR = Path(str(importlib.resources.files("sgcd.presets")))
CONFIG_DIR = PRESET_DIR  # the old name, kept for callers


class ConfigError(ValueError):
    """A bad key or value in a config: the message is one line naming the field."""


def _f(
    default: Any,
    help: str,
    choices: tuple | None = None,
    lo: float | None = None,
    hi: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
):
    """A dataclass field with its help text, allowed names and numeric bounds (lo/hi inclusive, gt/lt exclusive:
    for values where the bound itself would fail later, e.g. a division by it)."""
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi, "gt": gt, "lt": lt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = _f(
        "smollm2-135m", "policy model: smollm2-135m | tiny | a local HF folder | an HF id in the cache"
    )
    device: str = _f("cpu", "torch device (cpu, cuda, cuda:0)")
    dtype: str = _f(
        "float32",
        "parameter dtype; training needs float32 master weights (use model.autocast for low-precision compute)",
        ("float32", "bfloat16", "float16"),
    )
    autocast: str = _f(
        "none",
        "low-precision compute for the transformer body of the training passes (torch.autocast; for GPUs and "
        "CPUs with AMX / avx512_bf16: on AVX-512 alone bf16 was slower than float32, see docs/training.md); parameters, optimizer state, the output head and every log-softmax stay float32",
        ("none", "bfloat16", "float16"),
    )
    train_layers: int = _f(
        4,
        "train only the top K decoder blocks and the final norm (0 = every block); the frozen trunk's "
        "hidden states are computed once per row and reused",
        lo=0,
    )
    lora_rank: int = _f(0, "LoRA rank through peft (0 = no adapters, train the weights themselves)", lo=0)
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / rank)", lo=0.0)
    lora_targets: str = _f(
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated module names LoRA adapts"
    )
    grad_checkpoint: bool = _f(
        False,
        "recompute each decoder block's activations in the update's backward pass instead of keeping them: less "
        "memory, about a third more update compute (for LoRA over all blocks: docs/training.md)",
    )
    sft_warmstart: str = _f(
        "auto",
        "short supervised warm start on gold solutions before RL: auto = only for the built-in smollm2-135m "
        "(cached), on = always, off = never",
        ("auto", "on", "off"),
    )
    sft_budget: int = _f(
        40, "SFT warm-start optimizer steps (4 gold trajectories each; cached per budget)", lo=1
    )
    sft_lr: float = _f(
        3e-4,
        "SFT warm-start peak learning rate (3e-4 = `sgcd sft`'s default, so both share one cached warm start)",
        lo=0.0,
    )
    sft_reference: bool = _f(
        False,
        "reference-reading warm start (our addition, docs/training.md): a share of the SFT steps trains on the "
        "RL teacher's prompt, a credit reference built from scripted sibling attempts in the system message, "
        "followed by the successful sibling's turns, so the teacher learns to read the reference; needs the "
        "warm start (sft_warmstart on, or auto with smollm2-135m); false keeps the existing cached warm start",
    )
    sft_reference_share: float = _f(
        0.5,
        "with sft_reference: share of the sft_budget optimizer steps that train on reference examples (the "
        "others stay clean-prompt; raise sft_budget to keep the clean steps of the plain warm start)",
        lo=0.0,
        hi=1.0,
    )


@dataclass
class EnvConfig:
    name: str = _f(
        "airline-lite",
        "domain (benchmark): airline-lite | tau3-airline | appworld | an installed `sgcd.domains` entry point | "
        "package.module:factory (docs/custom_domain.md)",
    )
    train_split: str = _f("train", "split the training tasks are drawn from")
    eval_split: str = _f("test", "held-out split for evaluation")
    options: dict = _f({}, "extra keyword options for the domain factory (data paths, user simulator, ...)")


@dataclass
class SamplingConfig:
    group_size: int = _f(4, "G: sibling rollouts per task", lo=2)
    groups_per_step: int = _f(
        2, "mixed groups wanted per step (dynamic sampling stops when it has them)", lo=1
    )
    tasks_per_round: int = _f(4, "tasks rolled out per sampling round", lo=1)
    max_sampling_rounds: int = _f(
        2, "sampling rounds before training on whatever mixed groups were found", lo=1
    )
    temperature: float = _f(0.7, "sampling temperature for training rollouts", lo=0.0)
    top_p: float = _f(1.0, "nucleus sampling p", gt=0.0, hi=1.0)
    max_new_tokens: int = _f(64, "max tokens per assistant turn", lo=1)
    max_turns: int = _f(_LIMITS.max_turns, "max assistant turns per episode", lo=1)
    max_tokens: int = _f(_LIMITS.max_tokens, "max trajectory tokens (after the prompt) per episode", lo=16)
    pause_share: float = _f(
        0.0,
        "continuous batching (rollouts and evaluation): a generate round hands its unfinished turns back once "
        "fewer than this share of its rows are still sampling, so the finished rows' next turns start at once "
        "(0 = every round waits for its longest turn)",
        lo=0.0,
        hi=1.0,
    )


@dataclass
class AlgorithmConfig:
    name: str = _f("sgcd", "training algorithm; grpo is the matched comparator (w = 1)", ALGORITHMS)
    advantage: str = _f("grpo", "group advantage estimator (drgrpo = no std normalisation)", ADVANTAGES)
    ppo_epochs: int = _f(1, "passes over the step's trajectories", lo=1)
    minibatch_size: int = _f(8, "trajectories per optimizer step (one PPO minibatch)", lo=1)
    microbatch_size: int = _f(
        2, "trajectories per forward/backward (gradient accumulation inside a minibatch)", lo=1
    )
    clip_low: float = _f(0.2, "PPO clip eps_low", lo=0.0, lt=1.0)
    clip_high: float = _f(0.28, "PPO clip eps_high (clip-higher)", lo=0.0)
    dual_clip: float = _f(3.0, "dual-clip c > 1 for negative advantages (0 = off)", lo=0.0)
    loss_agg: str = _f(
        "token-mean", "loss aggregation", ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
    )
    kl_beta: float = _f(
        0.0, "beta of the k3 KL to the frozen reference model (0 = the reference is never loaded)", lo=0.0
    )
    sd_beta: float = _f(0.1, "sd-aux: weight of the per-token KL(student || teacher) term", lo=0.0)
    opd_c: float = _f(0.1, "opd-advantage: Ahat = A - c * (logp_S - logp_T)", lo=0.0)


@dataclass
class CreditConfig:
    teacher: str = _f(
        "pi_old",
        "who scores the trajectory with the credit reference: pi_old (the policy), reference (frozen initial "
        "model, which then scores the student side too), none (teacher sees the clean prompt = exact GRPO)",
        TEACHERS,
    )
    eps: float = _f(_CREDIT.eps, "weight bound: w in [1-eps, 1+eps] before renormalising", gt=0.0, hi=0.99)
    lam: float = _f(_CREDIT.lam, "lambda: w = (1-lambda) + lambda*w (0 = GRPO)", lo=0.0, hi=1.0)
    level: str = _f(_CREDIT.level, "credit granularity", ("token", "turn"))
    unsigned: bool = _f(_CREDIT.unsigned, "ablation: ignore the sign of A when forming u")
    failures_only: bool = _f(
        _CREDIT.failures_only, "reweight failed trajectories only (successes keep w = 1)"
    )
    shuffle: bool = _f(_CREDIT.shuffle, "falsification control: shuffle w within each trajectory")
    entropy_gate: bool = _f(
        _CREDIT.entropy_gate, "gate u by teacher entropy: g = clamp(1 - H_T/H0, g_min, 1)"
    )
    gate_h0: float = _f(_CREDIT.gate_h0, "H0 of the entropy gate (nats)", gt=0.0)
    gate_min: float = _f(_CREDIT.gate_min, "g_min of the entropy gate", lo=0.0, hi=1.0)

    def spec(self) -> CreditSpec:
        """This section as the credit spec sgcd.algorithm takes (the same names)."""
        return CreditSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CreditSpec)})


@dataclass
class SummarizerConfig:
    kind: str = _f(
        "offline", "credit reference source: offline (deterministic, no LLM) or llm", ("offline", "llm")
    )
    base_url: str = _f("", "OpenAI-compatible endpoint for kind=llm (e.g. http://127.0.0.1:8000/v1)")
    model: str = _f("", "model name at the endpoint")
    api_key_env: str = _f("OPENAI_API_KEY", "environment variable holding the API key (never logged)")
    timeout_s: float = _f(60.0, "per-request timeout", lo=0.1)
    max_retries: int = _f(3, "retries with backoff before falling back to the offline summarizer", lo=0)
    max_requests: int = _f(10000, "request budget for the run", lo=0)
    max_concurrency: int = _f(8, "groups summarized concurrently", lo=1)
    cache_dir: str = _f("", "content-addressed cache folder (empty = RUN_DIR/summarizer_cache)")
    max_fallback_rate: float = _f(
        0.5,
        "kind=llm: warn when more than this share of the run's references fell back to the offline summarizer "
        "(judged from 4 references on, and at the end of the run)",
        lo=0.0,
        hi=1.0,
    )
    strict: bool = _f(False, "kind=llm: passing summarizer.max_fallback_rate stops the run with an error")


@dataclass
class OptimConfig:
    lr: float = _f(1e-4, "AdamW learning rate", lo=0.0)
    weight_decay: float = _f(0.0, "AdamW weight decay", lo=0.0)
    beta1: float = _f(0.9, "AdamW beta1", lo=0.0, lt=1.0)
    beta2: float = _f(0.999, "AdamW beta2", lo=0.0, lt=1.0)
    grad_clip: float = _f(1.0, "max global grad norm (0 = no clipping)", lo=0.0)
    warmup_steps: int = _f(0, "linear warm-up steps", lo=0)
    schedule: str = _f("constant", "learning-rate schedule after warm-up", ("constant", "cosine", "linear"))


@dataclass
class LoggingConfig:
    progress: bool = _f(
        True, "progress on stderr: a rich bar on a terminal, else one line per step (`step N/T  success ..`)"
    )
    stdout: bool = _f(False, "also print one metrics line per step on stdout (`step N  success ..`)")
    tensorboard: bool = _f(False, "TensorBoard events under RUN_DIR/tb (needs the tensorboard extra)")
    wandb: bool = _f(False, "log to Weights & Biases (needs the wandb extra and WANDB_API_KEY)")
    wandb_project: str = _f("sgcd", "W&B project")
    sample_groups: int = _f(4, "mixed groups written to RUN_DIR/samples/ at each eval interval", lo=0)
    keep_samples: int = _f(20, "sample files kept (oldest deleted first)", lo=1)


@dataclass
class CheckpointConfig:
    every: int = _f(4, "checkpoint every N steps (0 = only at the end)", lo=0)
    keep_last: int = _f(2, "checkpoints kept", lo=1)


@dataclass
class EvalConfig:
    every: int = _f(
        0, "held-out evaluation every N steps for the learning curve (0 = only before and after)", lo=0
    )
    trials: int = _f(1, "trials per task", lo=1)
    limit: int = _f(100, "evaluate only the first N held-out tasks (0 = all)", lo=0)
    before: bool = _f(True, "evaluate before the first step")
    temperature: float = _f(0.0, "evaluation temperature (0 = greedy)", lo=0.0)
    batch_size: int = _f(32, "episodes advanced together in one batched generate call", lo=1)
    before_file: str = _f(
        "",
        "reuse the before-training evaluation stored in this JSON file (written by `sgcd compare`, whose runs "
        "share one warm start); refused when its model, domain or evaluation settings differ ('' = evaluate)",
    )


@dataclass
class RunConfig:
    seed: int = _f(0, "seed for task order, sampling and initialisation", lo=0, hi=2**63 - 1)
    steps: int = _f(6, "training steps", lo=0)
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    credit: CreditConfig = field(default_factory=CreditConfig)
    summarizer: SummarizerConfig = field(default_factory=SummarizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def algorithm_spec(self) -> Algorithm:
        """The run's algorithm (sgcd.algorithm.Algorithm): what a step needs and the token-advantage glue."""
        a = self.algorithm
        return Algorithm(a.name, a.advantage, self.credit.teacher, self.credit.spec(), a.kl_beta)

    @property
    def uses_teacher(self) -> bool:
        """True when the step scores trajectories with a credit-reference teacher (one extra forward)."""
        return self.algorithm_spec.needs_references

    @property
    def needs_reference_model(self) -> bool:
        """True when a frozen copy of the initial model must be loaded (KL term or reference teacher)."""
        return self.algorithm_spec.needs_reference


# ---------------------------------------------------------------------------------------------------------------
# Building, validating, overriding, saving


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(path: str, value: Any, tp: Any, meta: dict) -> Any:
    """Check `value` against the field's type, choices and bounds; return it coerced (int -> float ok)."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
    elif tp is str:
        if isinstance(value, bool) and set(meta.get("choices") or ()) >= {"on", "off"}:
            value = "on" if value else "off"  # YAML reads a bare on/off as a boolean
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
    elif tp is dict or origin is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
    elif isinstance(tp, types.UnionType):  # pragma: no cover - no unions in the config today
        pass
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
    lo, hi, gt, lt = meta.get("lo"), meta.get("hi"), meta.get("gt"), meta.get("lt")
    if gt is not None and value <= gt:
        raise ConfigError(f"{path}: {value!r} must be greater than {gt}")
    if lt is not None and value >= lt:
        raise ConfigError(f"{path}: {value!r} must be less than {lt}")
    if lo is not None and value < lo:
        raise ConfigError(f"{path}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{path}: {value!r} is above the maximum {hi}")
    return value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]}; {prefix.rstrip('.') or 'top level'} allows: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_section(tp):
            kwargs[name] = _build(tp, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", value, tp, dict(fields[name].metadata))
    return cls(**kwargs)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """`a.b=value` -> {"a": {"b": value}}; the value is parsed as YAML (numbers, true/false, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. algorithm.name=grpo")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    if parts[0] == "env" and len(parts) > 2 and parts[1] == "options":  # env.options.x=1
        return {"env": {"options": {".".join(parts[2:]): value}}}
    out: dict = {}
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def preset_path(preset: str) -> Path:
    """`smoke` -> the packaged sgcd/presets/smoke.yaml; a path to a YAML file is used as is."""
    path = Path(preset).expanduser()
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = PRESET_DIR / f"{preset}.yaml"
    if candidate.exists():
        return candidate
    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) if PRESET_DIR.exists() else []
    raise ConfigError(f"preset {preset!r} not found; choose one of: {', '.join(names)} or give a YAML path")


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (a YAML preset is text)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def make_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The resolved config: defaults <- preset YAML <- dotted overrides, validated."""
    data: dict = {}
    if preset:
        data = load_yaml(preset_path(preset))
    for text in overrides:
        data = _deep_merge(data, parse_override(text))
    return from_dict(data)


def _drop_retired(data: dict) -> dict:
    """`data` without the RETIRED keys (a retired key holding another value is an error naming it)."""
    out = dict(data)
    for (section, key), only in RETIRED.items():
        block = out.get(section)
        if isinstance(block, dict) and key in block:
            if block[key] != only:
                raise ConfigError(
                    f"{section}.{key} was removed (it could only be {only!r}); got {block[key]!r}"
                )
            out[section] = {k: v for k, v in block.items() if k != key}
    return out


def from_dict(data: dict) -> RunConfig:
    cfg = _build(RunConfig, _drop_retired(data))
    check_consistency(cfg)
    return cfg


def check_consistency(cfg: RunConfig) -> None:
    """Cross-field rules, each a one-line error naming the fields."""
    if cfg.algorithm.microbatch_size > cfg.algorithm.minibatch_size:
        raise ConfigError(
            f"algorithm.microbatch_size ({cfg.algorithm.microbatch_size}) must be <= algorithm.minibatch_size "
            f"({cfg.algorithm.minibatch_size})"
        )
    if cfg.model.dtype != "float32":
        raise ConfigError(
            f"model.dtype={cfg.model.dtype} would train {cfg.model.dtype} parameters (updates round away); keep "
            f"model.dtype=float32 and set model.autocast={cfg.model.dtype} for low-precision compute"
        )
    bad = [f"credit.{p}" for p in credit_problems(**dataclasses.asdict(cfg.credit))]
    bad += [f"algorithm.{p}" for p in loss_problems(**dataclasses.asdict(cfg.algorithm))]
    if bad:  # what sgcd.core would refuse at the first step, refused before any model loads
        raise ConfigError(bad[0])
    m = cfg.model
    if m.sft_reference:
        if not (m.sft_warmstart == "on" or (m.sft_warmstart == "auto" and m.name == "smollm2-135m")):
            raise ConfigError(
                f"model.sft_reference=true changes the SFT warm start, which model.sft_warmstart={m.sft_warmstart} "
                f"skips for model.name={m.name}; set model.sft_warmstart=on"
            )
        if m.sft_reference_share <= 0:
            raise ConfigError(
                "model.sft_reference=true with model.sft_reference_share=0 trains no reference step"
            )
    if cfg.summarizer.kind == "llm" and (not cfg.summarizer.base_url or not cfg.summarizer.model):
        raise ConfigError("summarizer.kind=llm needs summarizer.base_url and summarizer.model")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_config(path: Path) -> RunConfig:
    return from_dict(load_yaml(path))


def describe(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every field: the text of `sgcd train --help` and docs/training.md."""
    rows = []
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            rows += describe(tp, f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_text += f" [{' | '.join(map(str, f.metadata['choices']))}]"
        rows.append(
            (f"{prefix}{f.name}", yaml.safe_dump(default, default_flow_style=True).strip(), help_text)
        )
    return rows


def help_text() -> str:
    rows = describe()
    width = max(len(k) for k, _, _ in rows)
    return "\n".join(f"  {k:<{width}}  {h} (default: {d.removesuffix('...').strip()})" for k, d, h in rows)

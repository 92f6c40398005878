"""Evaluation: run an agent over a split and score it with the domain verifier. Never imports credit_reference.

evaluate(runner, domain, split, trials=1, limit=None, progress=True) -> EvalResult
episode_health(episodes) -> dict[str, float]     (pure; the trainer logs it under tools/)
make_runner(spec, domain, **opts) -> EpisodeRunner  (scripted:*, replay:FILE, openai:MODEL, or a model spec)
"""

from sgcd.eval.evaluate import EvalRecord, EvalResult, evaluate, summarize
from sgcd.eval.metrics import episode_health, pass_hat_k
from sgcd.eval.runners import TextAgentRunner, make_runner

__all__ = [
    "EvalRecord",
    "EvalResult",
    "TextAgentRunner",
    "episode_health",
    "evaluate",
    "make_runner",
    "pass_hat_k",
    "summarize",
]

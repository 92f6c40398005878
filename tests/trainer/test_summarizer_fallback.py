"""Loud failures in training (issue 19, item 4): an LLM summarizer that always falls back (here: a server that
answers 401) warns once on stderr when the fallback share passes summarizer.max_fallback_rate, and with
summarizer.strict=true the run stops with one line instead of quietly training on offline references."""

from __future__ import annotations

import pytest

from sgcd.cli import main
from sgcd.trainer.config import make_config
from sgcd.trainer.setup import FallbackWatch, TrainError
from support.openai_double import OpenAIDouble, http_error


def _llm(base_url: str) -> list[str]:
    return [
        "summarizer.kind=llm",
        f"summarizer.base_url={base_url}",
        "summarizer.model=m",
        "summarizer.max_retries=0",
        "steps=2",
        "checkpoint.every=0",
        "eval.every=0",
    ]


def test_always_failing_summarizer_warns(tmp_path, capsys, coin_overrides):
    with OpenAIDouble(handler=lambda body: http_error(401, "bad key")) as srv:
        assert (
            main(["train", "--out", str(tmp_path / "run"), "--quiet", *coin_overrides, *_llm(srv.base_url)])
            == 0
        )
        assert srv.request_count > 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: the LLM summarizer")]
    assert len(warnings) == 1, err  # once, not every step
    assert "fell back to offline references for" in warnings[0] and "(100%, above" in warnings[0]
    assert "summarizer.max_fallback_rate=0.5" in warnings[0] and "summarizer.strict=true" in warnings[0]


def test_strict_makes_it_an_error(tmp_path, capsys, coin_overrides):
    out = tmp_path / "run"
    with OpenAIDouble(handler=lambda body: http_error(401, "bad key")) as srv:
        args = ["train", "--out", str(out), "--quiet", *coin_overrides, *_llm(srv.base_url)]
        assert main([*args, "summarizer.strict=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sgcd train: error: the LLM summarizer")
    assert "stopping because summarizer.strict=true" in err
    assert not (out / "summary.json").exists()  # no summary claims a finished run


def test_watch_thresholds():
    cfg = make_config(None, ["summarizer.kind=llm", "summarizer.base_url=http://h/v1", "summarizer.model=m"])
    watch = FallbackWatch(cfg)
    watch.update({"reference/references": 2.0, "reference/fallbacks": 2.0})  # too few to judge yet
    assert not watch.warned
    watch.update({"reference/references": 2.0, "reference/fallbacks": 0.0})  # 2 of 4 = 50%: at the limit
    assert not watch.warned
    watch.update({"reference/references": 1.0, "reference/fallbacks": 1.0})  # 3 of 5 > 50%
    assert watch.warned
    short = FallbackWatch(cfg)
    short.update({"reference/references": 1.0, "reference/fallbacks": 1.0})
    short.update({}, final=True)  # a short run is judged at its end
    assert short.warned
    strict = make_config(
        None, [f"summarizer.{k}" for k in ("kind=llm", "base_url=u", "model=m", "strict=true")]
    )
    with pytest.raises(TrainError, match="summarizer.strict=true"):
        FallbackWatch(strict).update({"reference/references": 4.0, "reference/fallbacks": 4.0})
    offline = FallbackWatch(make_config())
    offline.update({"reference/references": 9.0, "reference/fallbacks": 9.0}, final=True)  # kind=offline: off
    assert not offline.warned

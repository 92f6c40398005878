"""The content-addressed reference cache: repeated groups make no request, across processes; writers are safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from cref_groups import cancel_group
from test_llm import OPTS, VALID, VALID_TEXT

from sgcd.credit_reference import CreditReference, make_summarizer
from sgcd.credit_reference.cache import ReferenceCache, cache_key
from support.openai_double import OpenAIDouble, reply

HERE = Path(__file__).parent
SECRET = "sk-test-SECRET-4f9a"

CHILD = """
import json, sys
from cref_groups import cancel_group
from sgcd.credit_reference import make_summarizer
summ = make_summarizer("openai:test-model", base_url=sys.argv[1], cache_dir=sys.argv[2], api_key_env="SGCD_TEST_KEY",
                       timeout=0.5, retries=0)
ref = summ.summarize(cancel_group())
print(json.dumps({"metrics": summ.metrics(), "reference": ref.model_dump(mode="json")}))
"""


def _child(base_url: str, cache_dir: Path) -> dict:
    env = dict(
        os.environ,
        SGCD_TEST_KEY=SECRET,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, base_url, str(cache_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_repeated_group_hits_the_cache_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_TEST_KEY", SECRET)
    with OpenAIDouble(handler=lambda body: reply(VALID_TEXT)) as srv:
        summ = make_summarizer("openai:test-model", base_url=srv.base_url, cache_dir=tmp_path, **OPTS)
        first = summ.summarize(cancel_group())
        second = summ.summarize(cancel_group())
        assert srv.request_count == 1 and first == second
        m = summ.metrics()
        assert (m["summarizer/cache_hits"], m["summarizer/cache_misses"], m["summarizer/source/cache"]) == (
            1,
            1,
            1,
        )
        # other evidence, or another model, is another key: a new request
        summ.summarize(replace(cancel_group(), instruction="a different task"))
        assert srv.request_count == 2
        other_model = make_summarizer("openai:other-model", base_url=srv.base_url, cache_dir=tmp_path, **OPTS)
        other_model.summarize(cancel_group())
        assert srv.request_count == 3


def test_repeated_group_hits_the_cache_across_processes(tmp_path):
    with OpenAIDouble(handler=lambda body: reply(VALID_TEXT)) as srv:
        url = srv.base_url
        a = _child(srv.base_url, tmp_path)
        assert srv.request_count == 1 and a["metrics"]["summarizer/requests"] == 1
        b = _child(srv.base_url, tmp_path)
        assert srv.request_count == 1  # zero new requests: the second process read the first one's answer
        assert b["metrics"]["summarizer/requests"] == 0 and b["metrics"]["summarizer/cache_hits"] == 1
        assert a["reference"] == b["reference"]
    stored = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert SECRET not in stored and "Authorization" not in stored and url not in stored


def test_fallbacks_are_not_cached(tmp_path):
    with OpenAIDouble([reply("not json"), reply("not json"), reply(VALID_TEXT)]) as srv:
        summ = make_summarizer("openai:test-model", base_url=srv.base_url, cache_dir=tmp_path, **OPTS)
        summ.summarize(cancel_group())  # falls back: nothing stored
        assert summ.summarize(cancel_group()).first_divergence.step_id == "S2"  # asked again, got the LLM's
        assert srv.request_count == 3


def test_concurrent_writers_and_corrupt_files(tmp_path):
    cache = ReferenceCache(tmp_path)
    ref = CreditReference.model_validate(VALID)
    key = cache_key("evidence", "v1", "m")
    errors = []

    def writer():
        try:
            for _ in range(30):
                cache.put(key, ref, "m", "v1")
                got = cache.get(key)
                assert got is None or got == ref  # never a torn file
        except Exception as exc:  # noqa: BLE001 - collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and cache.get(key) == ref
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.json"]  # no temp files left
    cache.path(key).write_text("{ truncated")
    assert cache.get(key) is None  # unreadable = miss
    cache.put(key, ref, "m", "v1")
    assert cache.get(key) == ref


def test_cache_key_parts():
    k = cache_key("e", "v1", "m")
    assert len({k, cache_key("e2", "v1", "m"), cache_key("e", "v2", "m"), cache_key("e", "v1", "m2")}) == 4
    assert k == cache_key("e", "v1", "m")

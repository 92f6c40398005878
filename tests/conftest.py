"""Test-wide set-up: markers that need hardware or endpoints skip with a stated reason, never silently."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a core dependency
        has_gpu = False
    llm_url = os.environ.get("SGCD_TEST_LLM_BASE_URL")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(
                pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch on this machine")
            )
        if "llm" in item.keywords and not llm_url:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs a real OpenAI-compatible LLM endpoint: set SGCD_TEST_LLM_BASE_URL"
                )
            )

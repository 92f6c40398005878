"""Policies: who produces tokens and scores them (transformers models, OpenAI-compatible servers, scripts)."""

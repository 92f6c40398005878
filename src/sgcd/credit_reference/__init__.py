"""Sibling contrast -> training-only stepwise credit reference (LLM and offline), and the teacher context."""

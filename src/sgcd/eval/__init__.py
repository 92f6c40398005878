"""Evaluation: run an agent over a split and score it with the domain verifier. Never imports credit_reference."""

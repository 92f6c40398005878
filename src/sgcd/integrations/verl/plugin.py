"""The `verl.plugins` entry point: importing this module registers SGCD's trainer mode and agent loop with verl.

verl loads entry points with `EntryPoint.load()` (import the module, fetch the attribute); it does not call
anything and logs a failing plugin only at DEBUG level. So registration runs here at import time, and a failure
(an unsupported verl version above all) is also logged at ERROR level before it is raised, so it is never silent.
`register()` is idempotent and may be called again by hand.
"""

from __future__ import annotations

import logging

from sgcd.integrations.verl import AGENT_NAME, TRAINER_MODE, check_verl_version

log = logging.getLogger("sgcd.integrations.verl")
_done = False


def register() -> None:
    """Check the verl version, then register trainer mode `sgcd` and agent loop `sgcd_agent` (once)."""
    global _done
    if _done:
        return
    try:
        check_verl_version()
        from sgcd.integrations.verl import agent_loop, trainer  # noqa: F401  (their decorators register)
    except Exception as exc:
        log.error("sgcd verl plugin not registered: %s", exc)
        raise
    _done = True
    log.debug("sgcd verl plugin registered: trainer mode %r, agent loop %r", TRAINER_MODE, AGENT_NAME)


register()

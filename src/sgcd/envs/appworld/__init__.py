"""AppWorld (Trivedi et al., ACL 2024) as an sgcd environment: the paper's first benchmark (TGC / SGC).

AppWorld runs in its own virtual environment (`.venv-appworld`, made by scripts/appworld_setup.sh), in worker
processes, one world per process, talking to this package over a pipe; this package never imports `appworld`.
See docs/appworld.md. Modules: domain (splits, tasks, options), env (code and function-call actions, rewards),
pool (worker processes), worker (runs inside the AppWorld venv), metrics (TGC/SGC), synthetic (test tasks).
"""

from sgcd.envs.appworld.domain import AppWorldConfig, AppWorldDomain, AppWorldUnavailable, make_domain
from sgcd.envs.appworld.metrics import tgc_sgc, tgc_sgc_trials

__all__ = [
    "AppWorldConfig",
    "AppWorldDomain",
    "AppWorldUnavailable",
    "make_domain",
    "tgc_sgc",
    "tgc_sgc_trials",
]

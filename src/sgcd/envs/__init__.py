"""Tool-use environments: the Env/Domain interface, tool-call parsing, and the domains (benchmarks)."""

from sgcd.envs.base import Domain, Env, Task, get_domain, list_domains, register_domain

__all__ = ["Domain", "Env", "Task", "get_domain", "list_domains", "register_domain"]

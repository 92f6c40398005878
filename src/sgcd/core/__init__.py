"""The paper's math as pure tensor functions: imports torch only, no I/O, no config objects.

Every function takes tensors and plain numbers and returns `(tensor(s), metrics: dict[str, float])`.

Modules: advantages (GRPO / Dr.GRPO / RLOO), sampling (mixed groups, refill), divergence (log-ratio, top-k
reverse KL / JSD + tail, entropies), credit (SGCD weights, token advantages), credit_stats (§8 diagnostics),
losses (PPO-clip, k3 KL, sd-replace / sd-aux / opd-advantage), registry (lookup by family and name).
See docs/core.md for the formulas, options and the tests that check each invariant.
"""

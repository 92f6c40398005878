"""The paper's math as pure tensor functions: imports torch only, no I/O, no config objects.

Every function takes tensors and plain numbers and returns `(tensor(s), metrics: dict[str, float])`.
"""

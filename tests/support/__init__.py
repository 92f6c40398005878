"""Shared test helpers (test doubles); import as `support.<module>` (tests/ is on sys.path via conftest)."""

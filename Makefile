# Convenience targets; the scripts in scripts/ are the source of truth (README: Quick start).
.PHONY: setup train test lint
setup:
	bash scripts/setup.sh
train:
	bash scripts/train.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check src tests && .venv/bin/ruff format --check src tests

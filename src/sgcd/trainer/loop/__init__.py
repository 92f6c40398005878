"""The training step, phase by phase: batch collation and scoring, sampling with refill, teacher glue, the step."""

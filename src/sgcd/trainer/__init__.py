"""The single-machine reference trainer: config, the training step, runs, checkpoints."""

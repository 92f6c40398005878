"""Multi-turn rollouts: run_episode / run_group record tokens, action mask and turn ids as they happen."""

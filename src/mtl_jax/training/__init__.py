"""Host orchestration: the Experiment, the loop and its hooks, checkpoints and logs."""

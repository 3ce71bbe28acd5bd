"""Hyper-parameter and structure search (``mtl-jax sweep``) and method tables (``mtl-jax compare``).

- ``space``: the search space an experiment file declares with ``get_sweep()`` (or the
  default one), its checks against the config, and its description stored in a study;
- ``storage``, ``study``, ``worker``, ``sweep``, ``outputs``: an Optuna study in an RDB
  storage (SQLite beside the runs, or PostgreSQL across machines), K worker processes,
  heartbeat-guarded trials, the best-trial table, the best config and the plots;
- ``statistics``, ``jobs``, ``compare``, ``compare_table``: single-task baselines and
  method × seed runs, and their table with Δm% and 95 % t intervals.

Optuna and matplotlib are the optional ``tune`` extra; nothing here imports them at
module import time, so ``import mtl_jax.tuning.space`` works without them.
"""

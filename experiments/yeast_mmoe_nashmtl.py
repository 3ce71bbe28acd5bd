"""Yeast (14 gene functional classes as one multi-label task) with an MMoE, Nash-MTL.

One multilabel task here, so the MMoE has one gate; the config shows the tabular trunk and
the expert architecture; use ``--set tasks=...`` with a multi-task dataset for real
trade-offs.
"""


def get_config() -> dict:
    return {
        "dataset": "yeast",
        "dataset_options": {},
        "tasks": [],
        "model": {"trunk": "mlp", "hidden": 128, "num_layers": 2, "architecture": "mmoe", "num_experts": 4, "dropout": 0.1},
        "aggregator": "nashmtl",
        "mode": "full",
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "batch_size": 64,
        "eval_batch_size": 256,
        "steps": 1_000,
        "log_every": 50,
        "eval_every": 200,
        "best_metric": "mean/macro_f1",
    }

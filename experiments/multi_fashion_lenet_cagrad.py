"""MultiFashion (two overlaid Fashion-MNIST items), the LeNet of Sener & Koltun, CAGrad.

Fashion-MNIST from the Debian package ``dataset-fashion-mnist``; 10 % of the train pairs
held out for validation.
"""


def get_config() -> dict:
    return {
        "dataset": "multi_fashion",
        "dataset_options": {"num_train": 60_000, "num_test": 10_000},
        "tasks": ["left", "right"],
        "model": {"trunk": "lenet"},
        "aggregator": "cagrad",
        "mode": "full",
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "batch_size": 256,
        "eval_batch_size": 1_000,
        "steps": 3_000,
        "log_every": 50,
        "eval_every": 500,
        "best_metric": "mean/accuracy",
    }

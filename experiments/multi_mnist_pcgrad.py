"""MultiMNIST (left and right digit), MLP trunk 784→512→512→512, PCGrad on the shared trunk."""


def get_config() -> dict:
    return {
        "dataset": "multi_mnist",
        "dataset_options": {"num_train": 10_000, "num_test": 2_000},
        "model": {"hidden": [512, 512, 512]},
        "aggregator": "pcgrad",
        "mode": "full",
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "batch_size": 256,
        "eval_batch_size": 500,
        "steps": 400,
        "seed": 0,
        "log_every": 20,
    }

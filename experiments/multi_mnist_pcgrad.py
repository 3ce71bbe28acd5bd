"""MultiMNIST (left and right digit), MLP trunk 784→512→512→512, PCGrad on the shared trunk.

Every key the trainer accepts is listed in ``mtl_jax.training.run_config`` (REQUIRED and
DEFAULTS); keys left out here take their defaults, and the resolved config is saved as
``config.json`` in the run directory.
"""


def get_config() -> dict:
    return {
        "dataset": "multi_mnist",
        "dataset_options": {"num_train": 10_000, "num_test": 2_000},
        "tasks": ["left", "right"],
        "model": {"trunk": "mlp", "hidden": 512, "num_layers": 3},
        "aggregator": "pcgrad",
        "mode": "full",
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "batch_size": 256,
        "eval_batch_size": 500,
        "steps": 400,
        "seed": 0,
        "log_every": 20,
        "eval_every": 200,
        "best_metric": "mean/accuracy",
        "checkpoint": {"every": 100, "keep": 2},
        "nonfinite": "skip",
    }


def get_sweep() -> dict:
    """The space of ``mtl-jax sweep`` for this experiment: learning rate, dropout, batch size,
    the aggregation method (CAGrad with its ``c``), and the MLP trunk's width and depth."""
    from mtl_jax.tuning.space import Choice, Float, Int

    return {
        "optimizer.learning_rate": Float(1e-4, 1e-2, log=True),
        "model.dropout": Float(0.0, 0.3),
        "batch_size": Choice([128, 256, 512]),
        "aggregator": Choice(
            ["sum", "pcgrad", "mgda", "cagrad", "upgrad"], when={"cagrad": {"aggregator_options.c": Float(0.1, 0.9)}}
        ),
        "model.architecture": Choice(["hard", "mmoe", "cross_stitch"], when={"mmoe": {"model.num_experts": Int(2, 8)}}),
        "model.hidden": Choice([256, 512, 1024]),
        "model.num_layers": Int(1, 4),
    }

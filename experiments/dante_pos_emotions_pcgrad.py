"""The default experiment: the seed articles' multi-task NLP model on DANTEStocks.

Portuguese finance tweets (PyPI ``dante-corpora``), one shared text encoder and nine tasks
on the same text — UPOS tagging (17 tags, token level) and eight emotions (Plutchik's
wheel, sentence level, 2 classes each, masked where the annotators had no majority). The
encoder is the seeds' recurrent one: word embeddings and a bidirectional GRU whose token
features feed the tagger and whose masked mean feeds the emotion heads. PCGrad removes the
conflicting components of the nine task gradients of the shared encoder in every step.

Runs end to end in under 3 minutes on 2 CPU cores (``bash scripts/train.sh``); the
README's table gives what it reaches against equal weighting and single-task training on
the same budget.
"""


def get_config() -> dict:
    return {
        "dataset": "dante_tweets",
        "dataset_options": {},
        "tasks": [],  # every task: upos + the 8 emotions
        "model": {
            "trunk": "bigru",
            "embed_dim": 64,
            "hidden": 64,
            "dropout": 0.1,
            "word_dropout": 0.05,
        },
        "aggregator": "pcgrad",
        "mode": "full",
        "optimizer": {"name": "adamw", "learning_rate": 3e-3, "weight_decay": 1e-4},
        "batch_size": 64,
        "eval_batch_size": 128,
        "steps": 500,
        "seed": 0,
        "log_every": 25,
        "eval_every": 100,
        "best_metric": "mean/macro_f1",
        "checkpoint": {"every": 100, "keep": 2},
        "nonfinite": "skip",
    }


def get_sweep() -> dict:
    """The space of ``mtl-jax sweep`` for this experiment (config keys -> distributions): the
    optimiser, regularisation and batch size, the aggregation method and mode, and the
    structure (sharing architecture, encoder width and depth)."""
    from mtl_jax.tuning.space import Choice, Float, Int

    return {
        "optimizer.learning_rate": Float(5e-4, 1e-2, log=True),
        "optimizer.weight_decay": Float(1e-6, 1e-2, log=True),
        "model.dropout": Float(0.0, 0.4),
        "model.word_dropout": Float(0.0, 0.2),
        "batch_size": Choice([32, 64, 128]),
        "aggregator": Choice(
            ["sum", "pcgrad", "mgda", "cagrad", "upgrad", "nashmtl"],
            when={"cagrad": {"aggregator_options.c": Float(0.1, 0.9)}},
        ),
        "mode": Choice(["full", "representation"]),
        "model.architecture": Choice(
            ["hard", "mmoe", "cgc", "ple", "cross_stitch", "mtan"],
            when={"mmoe": {"model.num_experts": Int(2, 6)}, "ple": {"model.levels": Int(1, 3)}},
        ),
        "model.hidden": Choice([32, 64, 128]),
        "model.num_layers": Int(1, 2),
    }

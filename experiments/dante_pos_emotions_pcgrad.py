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

"""Tasks from two datasets in one model: Turkish UD tagging + DANTEStocks emotions.

Each batch comes from one dataset, drawn by temperature-scaled sampling (T=2, Arivazhagan
et al. 2019); the tasks of the other dataset are masked out of that batch (loss 0, no
gradient). One joint vocabulary, one shared BiGRU encoder, UPGrad over the five tasks
(coarse POS and dependency relation from Turkish UD; trust, joy, fear from DANTEStocks).
"""


def get_config() -> dict:
    return {
        "dataset": ["turkish_ud", "dante_tweets"],
        "dataset_options": {},
        "mixing": {"strategy": "temperature", "temperature": 2.0},
        "tasks": ["coarse_pos", "deprel", "trust", "joy", "fear"],
        "model": {"trunk": "bigru", "embed_dim": 64, "hidden": 64, "dropout": 0.1},
        "aggregator": "upgrad",
        "mode": "full",
        "optimizer": {"name": "adamw", "learning_rate": 3e-3, "weight_decay": 1e-4},
        "batch_size": 32,
        "eval_batch_size": 128,
        "steps": 1_000,
        "log_every": 25,
        "eval_every": 250,
        "best_metric": "mean/macro_f1",
    }

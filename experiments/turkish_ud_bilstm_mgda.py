"""Turkish UD (web + wiki treebanks): four token-level tasks from one BiLSTM, MGDA-UB.

Coarse POS, fine POS, morphological-feature bundle and dependency relation per token,
the package's documented split (every 9th sentence dev, every 10th test). MGDA-UB: the
min-norm weights of the task gradients of the shared token features (representation mode).
"""


def get_config() -> dict:
    return {
        "dataset": "turkish_ud",
        "dataset_options": {},
        "tasks": [],
        "model": {"trunk": "bilstm", "embed_dim": 128, "hidden": 128, "dropout": 0.2, "word_dropout": 0.05},
        "aggregator": "mgda_ub",
        "mode": "representation",
        "optimizer": {"name": "adamw", "learning_rate": 2e-3, "weight_decay": 1e-4},
        "batch_size": 32,
        "eval_batch_size": 128,
        "steps": 3_000,
        "log_every": 50,
        "eval_every": 500,
        "best_metric": "mean/accuracy",
    }

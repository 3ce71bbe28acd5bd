"""QM9: 11 molecular property regressions from one message-passing network, UPGrad.

The standard MTL QM9 benchmark of Nash-MTL and FAMO: μ, α, ε_HOMO, ε_LUMO, ⟨R²⟩, ZPVE, U0,
U, H, G, c_v (energies as atomization energies, eV), targets normalised on the train split,
MAE reported in the original units. SchNet-style continuous-filter convolutions over
inter-atomic distances (RBF expansion, cosine cutoff), sum readout. The first preparation
reads all 130,831 molecules from ``qm9pack`` (a few minutes); set
``dataset_options.limit`` for a quick run.
"""


def get_config() -> dict:
    return {
        "dataset": "qm9",
        "dataset_options": {},
        "tasks": [],
        "model": {"trunk": "mpnn", "hidden": 128, "num_layers": 3, "cutoff": 5.0, "num_rbf": 32, "readout": "sum"},
        "aggregator": "upgrad",
        "mode": "full",
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "batch_size": 128,
        "eval_batch_size": 500,
        "steps": 20_000,
        "log_every": 100,
        "eval_every": 2_000,
        "best_metric": "mean/mae",
        "checkpoint": {"every": 2_000, "keep": 3},
    }

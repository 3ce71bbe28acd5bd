"""Effect of data augmentation at the same budget, 3 seeds: test metrics with and without.

Usage: python augment_effect.py {image|text} > results.jsonl
Augmentation is applied to each host batch before the step (pipeline-style wiring), keyed by
(seed, step, global example index) — mtl_jax.data.augment.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time

import jax
import numpy as np

from mtl_jax.data.augment import make_augmentation
from mtl_jax.parallel import replicate
from mtl_jax.training.experiment import Experiment

CASES = {
    "image": ("experiments/multi_mnist_pcgrad.py", {"shift": 2}),
    "text": ("experiments/dante_pos_emotions_pcgrad.py", {"token_deletion": 0.1, "token_swap": 0.1}),
}


def load(path: str) -> dict:
    spec = importlib.util.spec_from_file_location("exp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def run(config: dict, augmentation: dict) -> dict:
    experiment = Experiment.from_config(config)
    augment = make_augmentation(augmentation, experiment.data.spec) if augmentation else None
    jitted = None if augment is None else jax.jit(augment, static_argnums=1)
    state = replicate(experiment.initial_state(), experiment.mesh)
    batches = iter(experiment.train_batches())
    start = time.perf_counter()
    for step in range(config["steps"]):
        batch = next(batches)
        if jitted is not None:
            batch = {k: np.asarray(v) for k, v in jax.device_get(jitted(dict(batch), config["seed"], step, 0)).items()}
        state, _ = experiment.step(state, batch)
    jax.block_until_ready(state.params)
    seconds = time.perf_counter() - start
    return {"test": experiment.evaluate(state.params, "test"), "train_seconds": seconds}


def main() -> None:
    which = sys.argv[1]
    path, augmentation = CASES[which]
    for seed in (0, 1, 2):
        for name, aug in (("none", {}), ("augmented", augmentation)):
            config = dict(load(path), seed=seed)
            result = run(config, aug)
            print(json.dumps({"experiment": which, "augmentation": name, "options": aug, "seed": seed,
                              "device": jax.devices()[0].device_kind, **result}), flush=True)


if __name__ == "__main__":
    main()

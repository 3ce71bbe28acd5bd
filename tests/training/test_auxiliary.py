"""Auxiliary tasks: left out of ``mean/<metric>`` and Δm% (float64 references of both, from
their definitions), PCD's primary objective from the primary/auxiliary split (against the
float64 dual-cone projection of tests/aggregators/test_pcd.py), and a real run in which the
auxiliary task is trained, weighed by the surgery and left out of the best value."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from mtl_jax.aggregators import get_aggregator
from mtl_jax.aggregators.pcd import DEFAULT_PRIMARY
from mtl_jax.errors import ConfigError
from mtl_jax.evaluation.best import BestTracker, select_metric
from mtl_jax.evaluation.delta_m import delta_m
from mtl_jax.parallel import replicate
from mtl_jax.training import auxiliary
from mtl_jax.training.experiment import Experiment
from mtl_jax.training.loop import train
from tests.aggregators.references import make_jacobian, run_jitted, scale_of
from tests.aggregators.test_pcd import D_RTOL, projection_onto_dual_cone, target
from tests.training.small_run import tiny_config

TASKS = ("a", "b", "c", "d")


def random_results(rng, tasks=TASKS) -> dict[str, dict[str, float]]:
    return {t: {"accuracy": float(rng.uniform(0.1, 1)), "loss": float(rng.uniform(0.1, 3))} for t in tasks}


def test_mean_metric_leaves_out_the_auxiliary_tasks(rng):
    results = random_results(rng)
    auxiliary_tasks = ("a", "c")
    expected = np.mean([np.float64(results[t]["accuracy"]) for t in ("b", "d")])
    assert select_metric(results, "mean/accuracy", auxiliary_tasks) == pytest.approx(expected, rel=1e-12)
    assert select_metric(results, "mean/accuracy") == pytest.approx(np.mean([results[t]["accuracy"] for t in TASKS]))
    assert select_metric(results, "a/loss", auxiliary_tasks) == results["a"]["loss"]  # named: still reachable
    with pytest.raises(KeyError, match="no task reports 'accuracy'"):
        select_metric({"a": results["a"]}, "mean/accuracy", ("a",))  # only auxiliary tasks report it


def test_best_tracker_follows_the_primary_mean_and_keeps_the_exclusion_on_restore(rng):
    tracker = BestTracker("mean/accuracy", exclude=("a",))
    first = random_results(rng)
    second = {**first, "a": {"accuracy": 0.0, "loss": 9.0}, "b": {"accuracy": first["b"]["accuracy"] + 0.5, "loss": 1.0}}
    assert tracker.update(first, 1) and tracker.update(second, 2)  # a's collapse does not count
    assert tracker.value == pytest.approx(np.mean([second[t]["accuracy"] for t in ("b", "c", "d")]))
    restored = BestTracker.from_json(tracker.to_json(), exclude=("a",))
    assert restored == tracker and "exclude" not in tracker.to_json()


def reference_delta_m(model, baselines, metrics, tasks) -> float:
    """Δm% = (100/K) Σ (−1)^{l_k} (M_m,k − M_b,k) / M_b,k over the pairs of ``tasks``."""
    changes = []
    for task in tasks:
        for name in metrics[task]:
            sign = -1.0 if name == "accuracy" else 1.0
            base = np.float64(baselines[task][name])
            changes.append(sign * (np.float64(model[task][name]) - base) / base)
    return 100.0 * float(np.mean(changes))


def test_delta_m_leaves_out_the_auxiliary_tasks(rng):
    model, baselines = random_results(rng), random_results(rng)
    metrics = {t: ("accuracy", "loss") for t in TASKS}
    baselines["c"]["accuracy"] = 0.0  # undefined change, but c is auxiliary: never computed
    got = delta_m(model, baselines, metrics, exclude=("a", "c"))
    assert got == pytest.approx(reference_delta_m(model, baselines, metrics, ("b", "d")), rel=1e-12)
    with pytest.raises(ValueError, match="baseline c/accuracy is 0"):
        delta_m(model, baselines, metrics)


@pytest.fixture(scope="module")
def pcd_config():
    return tiny_config(aggregator="pcd", auxiliary_tasks=["left"])


def test_pcd_primary_objective_is_the_non_auxiliary_tasks(rng, pcd_config):
    config = dataclasses.replace(pcd_config, auxiliary_tasks=("a", "c"))
    options = auxiliary.aggregator_options(config, TASKS)
    assert options == {"primary": [1, 3]}
    jac = make_jacobian(rng, "random", 4)
    w = run_jitted(get_aggregator("pcd", **options), jac @ jac.T)
    expected = projection_onto_dual_cone(jac, target(jac, (1, 3), 0.0))
    assert np.linalg.norm(jac.T @ w - expected) <= D_RTOL * scale_of(jac) * 2
    default = projection_onto_dual_cone(jac, target(jac, DEFAULT_PRIMARY, 0.0))  # PCD's own default
    assert np.linalg.norm(jac.T @ w - default) > 10 * D_RTOL * scale_of(jac)  # ... is another direction


def test_pcd_without_auxiliary_tasks_keeps_its_default_and_other_methods_are_untouched(pcd_config):
    assert auxiliary.aggregator_options(dataclasses.replace(pcd_config, auxiliary_tasks=()), TASKS) == {}
    upgrad = dataclasses.replace(pcd_config, aggregator="upgrad", auxiliary_tasks=("a",))
    assert auxiliary.aggregator_options(upgrad, TASKS) == {}
    both = dataclasses.replace(pcd_config, aggregator_options={"primary": [0]})
    with pytest.raises(ConfigError, match="give the primary tasks once"):
        auxiliary.aggregator_options(both, ("left", "right"))


def test_an_auxiliary_task_is_trained_weighed_and_left_out_of_the_best_value(pcd_config, tmp_path):
    config = dataclasses.replace(pcd_config, steps=4, checkpoint=dataclasses.replace(pcd_config.checkpoint, every=4))
    experiment = Experiment.from_config(config)
    assert experiment.task_names == ("left", "right") and config.best_metric == "mean/accuracy"
    state = replicate(experiment.initial_state(), experiment.mesh)
    _, metrics = experiment.step(state, next(experiment.train_batches()))
    weights = np.asarray(jax.device_get(metrics["weights"]))
    assert weights.shape == (2,) and weights[1] >= 1 - 1e-5 and weights[0] >= -1e-6  # v ≥ u = (0, 1): right is primary
    results = train(experiment, workdir=tmp_path / "run", progress=False)
    validation = results["validation"]
    assert set(validation) == {"left", "right"}  # the auxiliary task is evaluated and reported
    assert results["best"]["value"] == pytest.approx(validation["right"]["accuracy"])  # but not in the mean
    _, trained = experiment.restore(tmp_path / "run", "latest")
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                         trained.params["tasks"]["left"], experiment.params["tasks"]["left"])  # fmt: skip
    assert min(jax.tree.leaves(moved)) > 0  # its head was trained

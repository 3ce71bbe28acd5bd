"""The aggregator kinds: every registered method is one of them with a named state, the
package docstring's examples of a new method work, and the non-finite guard keeps the kind."""

from __future__ import annotations

import re
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mtl_jax.aggregators as aggregators
from mtl_jax.aggregators import (
    KINDS,
    REGISTRY,
    EmptyState,
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
    UniformWeighting,
    WeightingInputs,
    get_aggregator,
    initial_state,
)
from mtl_jax.surgery import data_mesh, make_train_step
from mtl_jax.surgery.nonfinite import keep_state_when_nonfinite
from tests.aggregators.jacobian_harness import run_combine
from tests.aggregators.loss_harness import weigh_steps
from tests.aggregators.weighting_harness import run
from tests.helpers import small_model

NUM_TASKS = 5
OPTIONS = {"constant": {"weights": [0.5, 1.0, 1.5, 2.0, 0.25]}}
EXPECTED_KIND = {
    UniformWeighting: {"sum", "mean"},
    LossWeighting: {"rlw", "random", "uw", "dwa", "famo", "gls", "geometric_mean", "stch", "imtl_l", "constant"},
    JacobianAggregator: {"graddrop", "trimmed_mean", "moco", "excess_mtl", "db_mtl"},
    GramianWeighting: {
        "pcgrad", "mgda", "mgda_ub", "upgrad", "dualproj", "cagrad", "nashmtl", "fairgrad", "sdmgrad", "imtl_g",
        "aligned_mtl", "gradvac", "config", "krum", "cr_mogm", "modo", "gradnorm",
    },
}
KIND_OF = {name: kind for kind, names in EXPECTED_KIND.items() for name in names}
SHARED = {"kernel": jnp.zeros((4, 3), jnp.float32), "bias": jnp.zeros((3,), jnp.float32)}


def _build(name: str):
    return get_aggregator(name, **OPTIONS.get(name, {}))


def test_the_kinds_cover_the_registered_methods():
    assert set(KIND_OF) <= set(REGISTRY) and len(KIND_OF) == 34


@pytest.mark.parametrize("name", sorted(KIND_OF))
def test_every_method_is_one_kind_with_a_named_state(name):
    aggregator = _build(name)
    assert isinstance(aggregator, KINDS) and type(aggregator) is KIND_OF[name]
    state = initial_state(aggregator, NUM_TASKS, SHARED)
    assert hasattr(state, "_fields"), f"{name}'s state {type(state).__name__} is not a NamedTuple"
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        assert isinstance(path[0], jax.tree_util.GetAttrKey), f"{name}: unnamed state leaf {path}"


def test_description_is_the_factory_docstring_first_line():
    for name, (factory, description) in REGISTRY.items():
        assert factory.__doc__.strip().splitlines()[0].rstrip(".") == description, name
    assert REGISTRY["cagrad"][1].startswith("CAGrad (Liu et al. 2021, c=0.4)")


def _docstring_examples() -> dict:
    """Execute the code block of ``mtl_jax.aggregators.__doc__``; return its names."""
    block = re.search(r"::\n\n(.*?)\n\n(?=\S)", aggregators.__doc__, re.S).group(1)
    namespace = {"jax": jax, "jnp": jnp, **{name: getattr(aggregators, name) for name in aggregators.__all__}}
    exec("from typing import NamedTuple\n" + textwrap.dedent(block), namespace)
    return namespace


def test_the_docstring_examples_of_each_kind_work(rng):
    examples = _docstring_examples()
    jac = rng.standard_normal((3, 50))

    gramian_kind = examples["min_norm_pair"]()
    weights, state = run(gramian_kind, jac, x64=True)
    inverse = 1.0 / np.sum(jac**2, axis=1)
    np.testing.assert_allclose(weights, inverse / inverse.sum(), rtol=1e-10)
    assert isinstance(gramian_kind, GramianWeighting) and state == EmptyState()

    loss_kind = examples["inverse_loss"](decay=0.5)
    losses = [rng.uniform(0.5, 2.0, 3) for _ in range(3)]
    weights, states = weigh_steps(loss_kind, losses)
    scale = np.ones(3)
    for step_losses, w in zip(losses, weights):
        scale = 0.5 * scale + 0.5 * step_losses
        np.testing.assert_allclose(w, 1.0 / scale, rtol=1e-6)
    np.testing.assert_allclose(states[-1].scale, scale, rtol=1e-6)

    jacobian_kind = examples["sign_sum"]()
    direction, weights, _ = run_combine(jacobian_kind, jac)
    np.testing.assert_allclose(direction, np.sign(jac).sum(axis=0))
    assert np.all(np.isnan(weights))


@pytest.mark.parametrize("name", ["sum", "constant", "gradvac", "moco"])
def test_the_nonfinite_guard_keeps_the_kind(rng, name):
    aggregator = _build(name)
    guarded = keep_state_when_nonfinite(aggregator)
    assert type(guarded) is type(aggregator) and guarded.name == aggregator.name
    assert guarded.modes == aggregator.modes


def test_uniform_weighting_weighs_like_its_constant():
    aggregator = _build("mean")
    inputs = WeightingInputs(None, jnp.ones(4), jax.random.key(0), jnp.asarray(0))
    weights, state = aggregator.weigh(inputs, aggregator.init(4))
    np.testing.assert_array_equal(weights, np.full(4, 0.25, np.float32))
    assert state == ()


def test_the_step_refuses_what_is_no_aggregator():
    model, _ = small_model(2)
    with pytest.raises(TypeError, match="GramianWeighting, LossWeighting, UniformWeighting, JacobianAggregator"):
        make_train_step(model, lambda g: g, optax.sgd(0.1), data_mesh())

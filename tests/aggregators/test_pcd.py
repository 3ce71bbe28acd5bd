"""PCD against a float64 primal reference: the projection of the target Σ_P g_p + β Σ_S g_s
onto {y : Jy ≥ 0}, found by enumerating the active constraints on J itself (not the dual QP
that the implementation solves), plus its first-order guarantees and degenerate cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtl_jax.aggregators.pcd import pcd
from tests.aggregators.references import CASE_IDS, CASES, make_jacobian, run_jitted, scale_of

AGG = pcd()
# float32 Gramian vs float64 J: the projection is 1-Lipschitz in its target, so d agrees to
# 1e-4 of the largest gradient norm (as for UPGrad).
D_RTOL = 1e-4
# ⟨g_i, d⟩ ≥ −1e-5 max‖g‖²: float32 round-off on an exact 0 at an active constraint.
CONE_TOL = 1e-5


def projection_onto_dual_cone(jac: np.ndarray, target: np.ndarray) -> np.ndarray:
    """argmin_{Jy ≥ 0} ‖y − t‖²: for every active set A, y = t + J_Aᵀμ with J_A y = 0; keep the
    feasible KKT points (μ ≥ 0, Jy ≥ 0) and return the closest to t."""
    num = jac.shape[0]
    size = max(scale_of(jac), 1e-300) * max(np.linalg.norm(target), 1e-300)
    best, best_distance = None, np.inf
    for k in range(num + 1):
        for active in itertools.combinations(range(num), k):
            rows = jac[list(active)]
            if k:
                mu = np.linalg.lstsq(rows @ rows.T, -(rows @ target), rcond=None)[0]
                y = target + rows.T @ mu
            else:
                mu, y = np.zeros(0), target.copy()
            if np.all(mu >= -1e-9 * size) and np.all(jac @ y >= -1e-9 * size) and np.all(np.abs(rows @ y) <= 1e-9 * size):
                distance = np.linalg.norm(y - target)
                if distance < best_distance - 1e-12 * size:
                    best, best_distance = y, distance
    assert best is not None
    return best


def target(jac: np.ndarray, primary: tuple[int, ...], beta: float) -> np.ndarray:
    u = np.full(jac.shape[0], beta)
    u[list(primary)] = 1.0
    return jac.T @ u


@pytest.mark.parametrize(("name", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_primal_reference_and_keeps_every_task(rng, name, num_tasks):
    jac = make_jacobian(rng, name, num_tasks)
    w = run_jitted(AGG, jac @ jac.T)
    d = jac.T @ w
    expected = projection_onto_dual_cone(jac, jac[0])
    assert np.linalg.norm(d - expected) <= D_RTOL * scale_of(jac)
    assert np.all(jac @ d >= -CONE_TOL * scale_of(jac) ** 2)  # no task gets worse
    # progress on the primary task: ⟨g_0, d⟩ = ‖d‖² ≥ 0
    np.testing.assert_allclose(jac[0] @ d, d @ d, atol=CONE_TOL * scale_of(jac) ** 2)


@pytest.mark.parametrize(
    "primary,beta,name",
    [((1,), 0.0, "conflicting"), ((0, 2), 0.0, "random"), ((2,), 0.5, "zero_row"), ((0, 3), 1.0, "parallel")],
)
def test_other_primary_sets_and_secondary_weights(rng, primary, beta, name):
    jac = make_jacobian(rng, name, 4)
    aggregator = pcd(primary=list(primary), secondary_weight=beta)
    w = run_jitted(aggregator, jac @ jac.T)
    d = jac.T @ w
    t = target(jac, primary, beta)
    assert np.linalg.norm(d - projection_onto_dual_cone(jac, t)) <= D_RTOL * scale_of(jac) * len(primary) * (1 + 3 * beta)
    assert np.all(jac @ d >= -CONE_TOL * scale_of(jac) ** 2 * (1 + 3 * beta))
    assert t @ d >= -CONE_TOL * scale_of(jac) ** 2


def test_no_conflict_is_plain_primary_descent(rng):
    jac = make_jacobian(rng, "aligned", 5)
    np.testing.assert_allclose(run_jitted(AGG, jac @ jac.T), np.eye(5)[0], atol=1e-6)


def test_single_task_is_its_gradient(rng):
    jac = make_jacobian(rng, "random", 1)
    np.testing.assert_allclose(run_jitted(AGG, jac @ jac.T), [1.0], rtol=1e-6)


def test_antiparallel_secondary_stops_the_shared_update(rng):
    """g_1 = −c g_0: the only direction that hurts neither is orthogonal to g_0, so d = 0."""
    jac = make_jacobian(rng, "random", 3)
    jac[1] = -1.7 * jac[0]
    d = jac.T @ run_jitted(AGG, jac @ jac.T)
    assert np.linalg.norm(d) <= D_RTOL * scale_of(jac)


def test_parallel_secondary_leaves_the_primary_alone(rng):
    jac = make_jacobian(rng, "random", 2)
    jac[1] = 0.4 * jac[0]
    np.testing.assert_allclose(jac.T @ run_jitted(AGG, jac @ jac.T), jac[0], atol=D_RTOL * scale_of(jac))


def test_zero_primary_gradient_gives_zero_and_zero_secondary_is_ignored(rng):
    jac = make_jacobian(rng, "random", 3)
    zero_primary = jac.copy()
    zero_primary[0] = 0.0
    assert np.linalg.norm(zero_primary.T @ run_jitted(AGG, zero_primary @ zero_primary.T)) <= 1e-6 * scale_of(jac)
    only_primary = np.zeros_like(jac)
    only_primary[0] = jac[0]
    np.testing.assert_allclose(only_primary.T @ run_jitted(AGG, only_primary @ only_primary.T), jac[0], atol=1e-6 * scale_of(jac))


def test_all_zero_gradients_give_finite_zero_weights_on_secondaries():
    w = run_jitted(AGG, np.zeros((3, 3)))
    np.testing.assert_allclose(w[1:], 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"primary": []}, "at least one primary"),
        ({"primary": [0, 0]}, "repeated"),
        ({"primary": [-1]}, "non-negative"),
        ({"primary": [0.5]}, "integer"),
        ({"primary": "first"}, "list of task indices"),
        ({"secondary_weight": -0.1}, "secondary_weight ≥ 0"),
        ({"secondary_weight": float("nan")}, "secondary_weight ≥ 0"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        pcd(**options)


def test_primary_beyond_the_tasks_is_refused_at_init():
    with pytest.raises(ValueError, match=r"primary \[3\].*3 tasks"):
        pcd(primary=[3]).init(3)


def test_registry_turns_bad_options_into_one_config_error():
    from mtl_jax.aggregators import get_aggregator
    from mtl_jax.errors import ConfigError

    assert get_aggregator("pcd", primary=[1], secondary_weight=0.5).name == "pcd"
    with pytest.raises(ConfigError, match=r"aggregator 'pcd' rejects options .*at least one primary"):
        get_aggregator("pcd", primary=[])
    with pytest.raises(ConfigError, match="'pcd' has no option 'primary_task'; accepted options: primary, secondary_weight"):
        get_aggregator("pcd", primary_task=0)

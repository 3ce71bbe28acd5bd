"""GradVac against a float64 NumPy transcription of Wang et al. 2021, Algorithm 1, over several
steps of target (EMA state) evolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.gradvac import DEFAULT_BETA, GradVacState, gradvac, gradvac_weights
from mtl_jax.aggregators.pcgrad import pcgrad_weights, random_visit_orders
from tests.aggregators.weighting_harness import CASE_IDS, CASES, assert_update_close, run

NUM_STEPS = 4
# A large decay so that the targets move away from 0 within a few steps and the adjustments
# differ from PCGrad's projection; the paper's default is tested separately.
BETA = 0.5
AGGREGATOR = gradvac(BETA)


def reference_gradvac(jac: np.ndarray, targets: np.ndarray, orders: np.ndarray, beta: float):
    """Algorithm 1 on explicit vectors. Returns (update, new targets, smallest decision margin).

    The margin min |φ_ij − φ̂_ij| over the adjusted-or-not decisions tells whether float32 and
    float64 can be expected to take the same branches.
    """
    targets = targets.copy()
    update = np.zeros(jac.shape[1])
    margin = np.inf
    for i in range(jac.shape[0]):
        vaccinated = jac[i].copy()
        for j in orders[i]:
            own, other = np.linalg.norm(vaccinated), np.linalg.norm(jac[j])
            if j == i or own == 0 or other == 0:
                continue
            cosine = np.clip(vaccinated @ jac[j] / (own * other), -1.0, 1.0)
            target = targets[i, j]
            margin = min(margin, abs(cosine - target))
            if cosine < target and abs(target) < 1:
                vaccinated = vaccinated + own * (
                    target * np.sqrt(1 - cosine**2) - cosine * np.sqrt(1 - target**2)
                ) / (other * np.sqrt(1 - target**2)) * jac[j]
            targets[i, j] = (1 - beta) * target + beta * cosine
        update += vaccinated
    return update, targets, margin


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
def test_state_evolution_matches_reference(rng, make, num_tasks):
    ref_targets = np.zeros((num_tasks, num_tasks))
    state64 = state32 = None
    for step in range(NUM_STEPS):
        jac = make(rng, num_tasks)  # a fresh mini-batch Jacobian every step
        key = jax.random.key(int(rng.integers(2**31)))
        orders = np.asarray(random_visit_orders(key, num_tasks))
        expected, ref_targets, margin = reference_gradvac(jac, ref_targets, orders, BETA)
        w64, state64 = run(AGGREGATOR, jac, x64=True, state=state64, key=key, step=step)
        w32, state32 = run(AGGREGATOR, jac, x64=False, state=state32, key=key, step=step)
        # ‖g_i'‖ = √(wᵀGw) loses half the digits when g_i' cancels to ~0 (antiparallel pairs):
        # an absolute error up to ~√eps_64 of the gradient scale.
        assert_update_close(w64 @ jac, expected, jac, 1e-7)
        np.testing.assert_allclose(state64.targets, ref_targets, atol=1e-10)
        if margin > 1e-4:
            # float32: cosines from a float32 G are good to ~1e-6 and the few sequential
            # adjustments compound it; beyond this margin both take the same branches.
            assert_update_close(w32 @ jac, expected, jac, 1e-4)
            np.testing.assert_allclose(state32.targets, ref_targets, atol=1e-5)
        else:  # a near-tie decision: restart the float32 chain from the reference state
            state32 = GradVacState(targets=ref_targets.astype(np.float32))


def test_zero_targets_reduce_to_pcgrad(rng):
    """With φ̂ = 0 the adjustment is −(g_i'·g_j/‖g_j‖²) g_j when g_i'·g_j < 0: PCGrad."""
    jac = rng.standard_normal((5, 30))
    orders = np.stack([rng.permutation(5) for _ in range(5)])
    with jax.enable_x64(True):
        gram = jnp.asarray(jac @ jac.T)
        w, _ = gradvac_weights(gram, jnp.zeros((5, 5)), jnp.asarray(orders), DEFAULT_BETA)
        w_pc = pcgrad_weights(gram, jnp.asarray(orders))
    np.testing.assert_allclose(np.asarray(w), np.asarray(w_pc), rtol=1e-10, atol=1e-12)


def test_adjusted_cosine_reaches_target(rng):
    """Two tasks, task 1's target above the current cosine: afterwards cos(g_1', g_2) = φ̂_12."""
    jac = rng.standard_normal((2, 30))
    cosine = jac[0] @ jac[1] / np.linalg.norm(jac, axis=1).prod()
    target = min(cosine + 0.3, 0.95)
    # task 2's target -0.99 lies below cos(g_2, g_1), so g_2 is left alone: w = (1, 1 + c).
    targets = np.array([[0.0, target], [-0.99, 0.0]])
    with jax.enable_x64(True):
        w, new_targets = gradvac_weights(
            jnp.asarray(jac @ jac.T), jnp.asarray(targets), jnp.asarray([[0, 1], [0, 1]]), 0.25
        )
    w = np.asarray(w)
    np.testing.assert_allclose(w[0], 1.0, rtol=1e-12)
    vaccinated = jac[0] + (w[1] - 1.0) * jac[1]
    achieved = vaccinated @ jac[1] / (np.linalg.norm(vaccinated) * np.linalg.norm(jac[1]))
    np.testing.assert_allclose(achieved, target, rtol=1e-9)
    # the EMA uses the cosine measured before the adjustment
    np.testing.assert_allclose(np.asarray(new_targets)[0, 1], 0.75 * target + 0.25 * cosine, rtol=1e-12)


def test_paper_default_and_initial_state():
    aggregator = gradvac()
    assert DEFAULT_BETA == 1e-2
    state = aggregator.init(3)
    assert state.targets.shape == (3, 3) and not np.any(np.asarray(state.targets))
    with pytest.raises(ValueError):
        gradvac(0.0)

"""Random Jacobians (T × P, float64) for aggregator tests, including the degenerate cases."""

from __future__ import annotations

import numpy as np


def random_jacobian(rng: np.random.Generator, num_tasks: int, dim: int = 50) -> np.ndarray:
    """Gaussian rows with random scales, so norms differ by up to ~10×."""
    scales = np.exp(rng.uniform(-1.2, 1.2, size=(num_tasks, 1)))
    return rng.standard_normal((num_tasks, dim)) * scales


def conflicting_jacobian(rng: np.random.Generator, num_tasks: int, dim: int = 50) -> np.ndarray:
    """Every pair of rows has a negative inner product (rows ≈ a simplex's vertices)."""
    basis, _ = np.linalg.qr(rng.standard_normal((dim, num_tasks)))
    vertices = np.eye(num_tasks) - 1.0 / num_tasks  # pairwise inner products -1/T < 0
    jac = (basis @ vertices).T * np.exp(rng.uniform(-0.3, 0.3, size=(num_tasks, 1)))
    gram = jac @ jac.T
    assert np.all(gram[~np.eye(num_tasks, dtype=bool)] < 0)
    return jac


def aligned_jacobian(rng: np.random.Generator, num_tasks: int, dim: int = 50) -> np.ndarray:
    """Every pair of rows has a positive inner product (a common direction plus noise)."""
    common = rng.standard_normal(dim)
    common *= 3.0 / np.linalg.norm(common)
    jac = common + 0.3 * rng.standard_normal((num_tasks, dim)) / np.sqrt(dim)
    gram = jac @ jac.T
    assert np.all(gram > 0)
    return jac


def with_zero_row(rng: np.random.Generator, num_tasks: int, dim: int = 50) -> np.ndarray:
    """A random Jacobian whose row 0 is exactly zero (a task with no gradient)."""
    jac = random_jacobian(rng, num_tasks, dim)
    jac[0] = 0.0
    return jac


def with_parallel_rows(rng: np.random.Generator, num_tasks: int, dim: int = 50) -> np.ndarray:
    """Row 1 is a positive multiple of row 0."""
    jac = random_jacobian(rng, num_tasks, dim)
    jac[1] = 2.5 * jac[0]
    return jac


NEEDS_TWO_ROWS = ("with_zero_row", "with_parallel_rows")


def jacobian_cases(makes, task_counts) -> list[tuple]:
    """(make, num_tasks) pairs for parametrize, leaving out the degenerate makers at T=1
    (a zero row beside another, or two parallel rows, need T >= 2)."""
    return [
        (make, num_tasks)
        for num_tasks in task_counts
        for make in makes
        if num_tasks >= 2 or make.__name__ not in NEEDS_TWO_ROWS
    ]

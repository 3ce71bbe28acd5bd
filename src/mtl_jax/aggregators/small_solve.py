"""Loop-free linear solves for tiny symmetric positive (semi-)definite systems.

XLA:GPU turns ``jnp.linalg.solve`` / ``cholesky`` on a T × T matrix into a cuSOLVER call
(~100–300 µs for T = 8), and a rolled loop costs a host round-trip per iteration. For the
static, small T of multi-task learning both are avoided by Gauss–Jordan elimination written
as T unrolled elimination steps of element-wise operations (no ``dot``, so no cuBLAS call
either; each step is one fusible kernel):

    for k = 0 … T−1:  row_k ← row_k / M_kk;   row_i ← row_i − M_ik · row_k  (i ≠ k),

applied to [M | R] (Golub & Van Loan, "Matrix Computations", 4th ed., Sec. 3.2 / 4.2). On a
symmetric positive semi-definite M no pivoting is needed: the k-th pivot is the Schur
complement of the leading k × k block, which is ≥ 0 and — the pivot-safety rule used here —
is declared *singular* when it is ≤ ``rtol`` times the original diagonal entry M_kk (the
relative loss of a column to the span of the previous ones; default ``rtol = 128·eps``, the
cut-off the eigen-decomposition pseudo-inverse used before). Singular systems are reported,
not solved; callers fall back to a smaller system (see ``qp.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def default_pivot_rtol(dtype) -> float:
    """128·eps(dtype): relative pivot below which a PSD system is treated as singular."""
    return 128 * float(jnp.finfo(dtype).eps)


def matvec(matrix: jax.Array, vector: jax.Array) -> jax.Array:
    """(..., T, T) @ (..., T) as a broadcast product and sum: exact float arithmetic (no TF32
    rounding on accelerators) and fusible with its neighbours (no library call)."""
    return jnp.sum(matrix * vector[..., None, :], axis=-1)


def psd_solve(
    matrix: jax.Array, rhs: jax.Array, rtol: float | None = None
) -> tuple[jax.Array, jax.Array]:
    """Solve M X = R for symmetric PSD M by unrolled Gauss–Jordan without pivoting.

    Args:
      matrix: (..., T, T) symmetric PSD (batched).
      rhs: (..., T, K) right-hand sides.
      rtol: relative pivot tolerance (default ``default_pivot_rtol``).

    Returns:
      ``(X, nonsingular)``: X (..., T, K) (meaningless where ``nonsingular`` is False) and a
      (...,) bool, False when some pivot is ≤ rtol · its original diagonal entry.
    """
    rtol = default_pivot_rtol(matrix.dtype) if rtol is None else rtol
    num = matrix.shape[-1]
    diag = jnp.diagonal(matrix, axis1=-2, axis2=-1)
    nonsingular = jnp.ones(matrix.shape[:-2], bool)
    for k in range(num):  # T unrolled steps: straight-line code for static T
        pivot = matrix[..., k, k]
        good = pivot > rtol * jnp.maximum(diag[..., k], 0.0)
        good = good & (pivot > 0)
        nonsingular = nonsingular & good
        inv_pivot = jnp.where(good, 1.0 / jnp.where(good, pivot, 1.0), 0.0)
        row_m = matrix[..., k, :] * inv_pivot[..., None]
        row_r = rhs[..., k, :] * inv_pivot[..., None]
        column = matrix[..., :, k]
        is_k = (jnp.arange(num) == k)[:, None]
        matrix = jnp.where(is_k, row_m[..., None, :], matrix - column[..., :, None] * row_m[..., None, :])
        rhs = jnp.where(is_k, row_r[..., None, :], rhs - column[..., :, None] * row_r[..., None, :])
    return rhs, nonsingular

"""Equal weighting (EW): the plain sum or mean of the task gradients, d = Σ_t g_t (or /T).

The baseline of every MTL comparison (e.g. Sener & Koltun 2018, Table 1 "uniform scaling").
The weights are uniform constants (a :class:`~mtl_jax.aggregators.kinds.UniformWeighting`),
so the step skips the Jacobian entirely and back-propagates the summed loss once.
"""

from __future__ import annotations

from mtl_jax.aggregators.kinds import UniformWeighting


def _one(num_tasks: int) -> float:
    del num_tasks
    return 1.0


def _inverse(num_tasks: int) -> float:
    return 1.0 / num_tasks


def ew_sum() -> UniformWeighting:
    """EW: plain sum of the task gradients, d = Σ_t g_t."""
    return UniformWeighting("sum", _one)


def ew_mean() -> UniformWeighting:
    """EW: mean of the task gradients, d = (1/T) Σ_t g_t."""
    return UniformWeighting("mean", _inverse)

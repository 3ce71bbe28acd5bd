"""Δm%: the mean relative change of a multi-task model against single-task baselines.

Maninis et al. (CVPR 2019) and Vandenhende et al. (TPAMI 2021), in the sign convention of
Navon et al. (ICML 2022, Nash-MTL) used by most gradient-surgery papers:

    Δm% = (100 / K) Σ_k (−1)^{l_k} (M_m,k − M_b,k) / M_b,k,   l_k = 1 if higher is better,

over the K compared (task, metric) pairs; M_m is the multi-task model, M_b the baseline.
Auxiliary tasks are not compared (``exclude``): Δm% measures the primary tasks.
Negative Δm% means the multi-task model is better on average.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from mtl_jax.evaluation.directions import higher_is_better

Metrics = Mapping[str, Mapping[str, float]]


def delta_m(
    model: Metrics, baselines: Metrics, metrics: Mapping[str, tuple[str, ...]], exclude: Sequence[str] = ()
) -> float:
    """Δm% over ``metrics`` = {task: (metric names)}; tasks in ``baselines`` only, and none of
    ``exclude`` (auxiliary tasks).

    Raises ``ValueError`` when a baseline value is 0 (the relative change is undefined) or
    no (task, metric) pair can be compared.
    """
    changes = []
    for task, names in metrics.items():
        if task not in baselines or task in exclude:
            continue
        for name in names:
            base, value = baselines[task][name], model[task][name]
            if base == 0:
                raise ValueError(f"baseline {task}/{name} is 0: the relative change is undefined")
            sign = -1.0 if higher_is_better(name) else 1.0
            changes.append(sign * (value - base) / base)
    if not changes:
        raise ValueError(f"no task of {sorted(metrics)} has a baseline among {sorted(baselines)}")
    return 100.0 * sum(changes) / len(changes)

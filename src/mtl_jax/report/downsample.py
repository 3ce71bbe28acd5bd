"""Fewer points for plotting a long metric series: bucket means over equal runs of records."""

from __future__ import annotations

import numpy as np

MAX_POINTS = 400


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` (step, value) pairs: consecutive records averaged in equal buckets.

    A series already short enough is returned unchanged; otherwise bucket k holds records
    ⌊k n / m⌋ … ⌊(k+1) n / m⌋ − 1 and gives the mean step and the mean value (NaNs ignored
    unless a whole bucket is NaN). Numbers in the report are computed from the full series.
    """
    steps, values = np.asarray(steps), np.asarray(values, np.float64)
    n = steps.shape[0]
    if n <= max_points:
        return steps, values
    edges = np.linspace(0, n, max_points + 1).astype(int)
    out_steps = np.array([steps[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    out_values = np.empty(max_points)
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        chunk = values[a:b]
        finite = chunk[np.isfinite(chunk)]
        out_values[k] = finite.mean() if finite.size else np.nan
    return out_steps, out_values

"""Whether a higher value of a metric is better (sets the sign of Δm% and best-so-far)."""

from __future__ import annotations

LOWER_IS_BETTER = ("loss", "mae")
HIGHER_IS_BETTER = ("accuracy", "macro_f1", "f1")


def higher_is_better(metric: str) -> bool:
    """``metric`` is a name such as ``accuracy``, ``mae`` or ``f1/<label>``."""
    base = metric.split("/")[0]
    if base in HIGHER_IS_BETTER:
        return True
    if base in LOWER_IS_BETTER:
        return False
    raise KeyError(f"unknown metric {metric!r}; known: {', '.join(HIGHER_IS_BETTER + LOWER_IS_BETTER)}")

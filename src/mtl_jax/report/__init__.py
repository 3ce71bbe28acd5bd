"""``mtl-jax report``: figures and a self-contained HTML page from run directories.

Reads ``metrics.jsonl``, ``results.json`` and ``config.json`` of runs made by
``mtl-jax train`` and draws, for one run, the per-task curves, the aggregator's weights,
the conflict rate, cosine heatmaps, gradient-norm ratios and magnitude similarity, the
update-vs-mean-gradient cosine, per-layer conflict (when logged) and the final metrics; for
several runs, overlaid curves and a comparison table (Δm%, mean rank).
"""

from mtl_jax.report.build import Report, build_report
from mtl_jax.report.runs import Run, read_run, read_runs

__all__ = ["Report", "Run", "build_report", "read_run", "read_runs"]

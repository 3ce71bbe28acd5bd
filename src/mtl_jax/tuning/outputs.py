"""What a sweep leaves: the best-trial table, the best config as an experiment file, plots.

- :func:`best_trials_table`: the k best finished trials (markdown), with their drawn
  values and run directories;
- :func:`write_best_config`: ``best_config.py`` defining ``get_config()`` with the best
  trial's full config, ready for ``mtl-jax train --config``;
- :func:`write_plots`: PNGs from ``optuna.visualization.matplotlib`` (optimisation
  history, parameter importances, parallel coordinates); a plot Optuna cannot draw yet
  (e.g. importances before two complete trials) is skipped with a note.
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any, Mapping

from mtl_jax.tuning import study as study_lib
from mtl_jax.tuning.space import apply
from mtl_jax.tuning.suggest import values_of

PLOTS = {
    "history": "plot_optimization_history",
    "importances": "plot_param_importances",
    "parallel_coordinates": "plot_parallel_coordinate",
}


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def ranked_trials(study: Any) -> list[Any]:
    """Complete trials, best first."""
    from optuna.trial import TrialState  # noqa: PLC0415

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number))


def best_trials_table(study: Any, space: Mapping[str, Any], metric: str, k: int = 5) -> str:
    rows = ["| rank | trial | " + metric + " (validation) | drawn values | run dir |", "|---|---|---|---|---|"]
    for rank, trial in enumerate(ranked_trials(study)[:k], 1):
        values = values_of(trial.params, space)
        drawn = ", ".join(f"{key}={_format(value)}" for key, value in values.items())
        rows.append(f"| {rank} | {trial.number} | {trial.value:.4f} | {drawn} | {trial.user_attrs.get(study_lib.RUN_DIR_ATTR, '')} |")
    return "\n".join(rows)


def best_config(study: Any, config: Mapping[str, Any], space: Mapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    ranked = ranked_trials(study)
    if not ranked:
        return None
    return ranked[0], apply(config, values_of(ranked[0].params, space))


def write_best_config(path: Path, study: Any, config: Mapping[str, Any], space: Mapping[str, Any], source: str) -> Path | None:
    found = best_config(study, config, space)
    if found is None:
        return None
    trial, best = found
    text = (
        f'"""The best trial of sweep {study.study_name!r}: trial {trial.number}, {config["best_metric"]} ='
        f' {trial.value:.6g} on the {config["eval_split"]} split.\n\nWritten by `mtl-jax sweep` from {source};'
        f' its run directory: {trial.user_attrs.get(study_lib.RUN_DIR_ATTR, "?")}.\n"""\n\n\n'
        f"def get_config() -> dict:\n    return {pprint.pformat(best, indent=4, width=100, sort_dicts=False)}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_plots(study: Any, folder: Path) -> tuple[list[Path], list[str]]:
    """(written PNG paths, notes on the plots that were skipped)."""
    import warnings  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import optuna.visualization.matplotlib as plots  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" warnings of optuna's matplotlib backend
                axes = getattr(plots, function)(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(9, 5.5)
            figure.tight_layout()
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
        except Exception as error:  # noqa: BLE001 - e.g. too few complete trials for importances
            notes.append(f"{name}: not drawn ({' '.join(str(error).split())[:160]})")
    return written, notes

"""`mtl-jax compare` on a slice: 2 methods x 2 seeds, and the table read back from the runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mtl_jax.tuning.compare import CompareRequest, run_compare
from tests.helpers import persistent_jit_cache
from tests.tuning.helpers import write_experiment


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    folder = tmp_path_factory.mktemp("compare")
    experiment = write_experiment(folder, space=None)
    request = CompareRequest(
        config=str(experiment), methods=("sum", "pcgrad"), seeds=2, workers=2, workdir=str(folder / "compare"),
        baselines_dir=str(folder / "baselines"), sets=("steps=2", "checkpoint.every=2"),
    )
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as env:  # the runs' processes share one persistent compilation cache
        for name, value in persistent_jit_cache(folder / "jit_cache").items():
            env.setenv(name, value)
        assert run_compare(request, echo=lines.append) == 0
    again: list[str] = []
    assert run_compare(request, echo=again.append) == 0  # everything cached: nothing trained again
    assert any("4 of 4 runs cached; training 0" in line for line in again) and sum("cached" in l for l in again) == 2
    return folder, json.loads((folder / "compare" / "compare.json").read_text()), lines


@pytest.mark.slow
def test_the_table_holds_the_numbers_of_the_runs_results(compared) -> None:
    folder, table, _ = compared
    assert table["columns"] == ["left/accuracy", "left/macro_f1", "right/accuracy", "right/macro_f1"]
    baseline, *methods = table["rows"]
    assert baseline["method"] == "single-task" and [row["method"] for row in methods] == ["sum", "pcgrad"]
    assert len(baseline["runs"]) == 4 and all(Path(r).parent == folder / "baselines" for r in baseline["runs"])
    for column in table["columns"]:
        task, metric = column.split("/")
        values = [json.loads((Path(r) / "results.json").read_text())["test"][task][metric] for r in baseline["runs"]
                  if json.loads((Path(r) / "config.json").read_text())["tasks"] == [task]]
        assert baseline["metrics"][column]["values"] == values and len(values) == 2
        assert baseline["metrics"][column]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    for row in methods:
        results = [json.loads((Path(r) / "results.json").read_text()) for r in row["runs"]]
        configs = [json.loads((Path(r) / "config.json").read_text()) for r in row["runs"]]
        assert [c["seed"] for c in configs] == [0, 1] and {c["aggregator"] for c in configs} == {row["method"]}
        for column in table["columns"]:
            task, metric = column.split("/")
            values = [r["test"][task][metric] for r in results]
            assert row["metrics"][column]["values"] == values
            assert row["metrics"][column]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert row["metrics"][column]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-9, abs=1e-15)
        deltas = [r["delta_m"] for r in results]
        assert row["delta_m"]["values"] == deltas
        assert row["delta_m"]["mean"] == pytest.approx(np.mean(deltas), rel=1e-12)
        expected = stats.t.interval(0.95, 1, loc=np.mean(deltas), scale=stats.sem(deltas)) if np.std(deltas) else (np.mean(deltas),) * 2
        assert row["delta_m"]["ci95"] == pytest.approx(list(expected), rel=1e-9, abs=1e-12)
        # the seeds' baselines are the same seed's single-task runs
        for config in configs:
            assert all(f"seed{config['seed']}-" in Path(d).name for d in config["baselines"].values())


def test_mean_ranks_follow_the_means_and_files_are_written(compared) -> None:
    folder, table, lines = compared
    _, sum_row, pcgrad_row = table["rows"]
    for column in table["columns"]:
        a, b = sum_row["metrics"][column]["mean"], pcgrad_row["metrics"][column]["mean"]
        expected = (1.5, 1.5) if a == b else ((1.0, 2.0) if a > b else (2.0, 1.0))  # accuracy, macro-F1: higher is better
        assert (sum_row["ranks"][column], pcgrad_row["ranks"][column]) == expected
    assert sum_row["mean_rank"] + pcgrad_row["mean_rank"] == pytest.approx(3.0)
    markdown = (folder / "compare" / "compare.md").read_text()
    assert f"{sum_row['delta_m']['mean']:.2f} ± {sum_row['delta_m']['sd']:.2f}" in markdown
    assert (folder / "compare" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert any(line.startswith("| method |") for line in "\n".join(lines).splitlines())

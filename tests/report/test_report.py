"""`mtl-jax report` on short real runs: non-blank figures, numbers equal to the run files."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from mtl_jax.cli.report import main as report_main
from mtl_jax.report import build_report
from mtl_jax.report.gradients import magnitude_similarity, update_mean_cosine
from mtl_jax.surgery.gradient_stats import layer_scalars, layer_statistics

TINY = {
    "dataset": "multi_mnist",
    "dataset_options": {"num_train": 300, "num_test": 64},
    "tasks": ["left", "right"],
    "model": {"trunk": "mlp", "hidden": 16, "num_layers": 2},
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
    "batch_size": 32,
    "eval_batch_size": 64,
    "steps": 6,
    "log_every": 2,
    "eval_every": 3,
    "best_metric": "mean/accuracy",
    "checkpoint": {"every": 6, "keep": 1},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two short real runs: PCGrad with gradient statistics, EW without."""
    from mtl_jax.training.loop import train

    root = tmp_path_factory.mktemp("report_runs")
    train({**TINY, "aggregator": "pcgrad"}, workdir=root / "pcgrad", progress=False)
    train({**TINY, "aggregator": "sum", "gradient_stats": False}, workdir=root / "ew_nostats", progress=False)
    return {"pcgrad": root / "pcgrad", "ew_nostats": root / "ew_nostats"}


@pytest.fixture(scope="module")
def single_report(runs, tmp_path_factory):
    return build_report([runs["pcgrad"]], tmp_path_factory.mktemp("single_report"))


def _train_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "train"]


def assert_not_blank(png: Path) -> None:
    pixels = mpimg.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50, png
    assert float(pixels.var()) > 0, f"{png} is one flat colour"
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 10, f"{png} has {len(colours)} colours"


def embedded_images(page: Path) -> list[np.ndarray]:
    blobs = re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())
    return [mpimg.imread(io.BytesIO(base64.b64decode(b)), format="png") for b in blobs]


def test_one_run_report_draws_every_figure(single_report):
    report = single_report
    expected = {"curves", "weights", "conflict_rate", "cosine_heatmaps", "magnitudes", "update_cosine"}
    assert set(report.figures) == expected
    for png in report.figures.values():
        assert_not_blank(png)
    images = embedded_images(report.page)
    assert len(images) == len(expected) and all(img.var() > 0 for img in images)
    assert report.page.stat().st_size < 3_000_000
    assert any("per-layer" in n for n in report.notes)  # the step logs no layer_* metrics here


def test_report_numbers_equal_the_run_files(runs, single_report):
    run, report = runs["pcgrad"], single_report
    numbers = report.summary["runs"][0]
    results = json.loads((run / "results.json").read_text())
    for task, metrics in results["test"].items():
        for name, value in metrics.items():
            assert numbers["test"][task][name] == value
    conflicts = [r["conflict_fraction"] for r in _train_records(run)]
    assert numbers["mean_conflict_rate"] == pytest.approx(sum(conflicts) / len(conflicts), abs=1e-12)
    cosines = [r["grad_cosine/left~right"] for r in _train_records(run)]
    assert numbers["mean_cosine"] == pytest.approx(sum(cosines) / len(cosines), abs=1e-12)
    page = report.page.read_text()
    assert f"{numbers['mean_conflict_rate']:.4f}" in page
    assert f"{results['test']['left']['accuracy']:.4f}" in page
    assert json.loads((report.page.parent / "summary.json").read_text())["runs"][0]["mean_conflict_rate"] == pytest.approx(
        numbers["mean_conflict_rate"])


def test_run_without_gradient_stats_gets_a_note_and_no_conflict_figures(runs, tmp_path):
    report = build_report([runs["ew_nostats"]], tmp_path / "out")
    assert set(report.figures) == {"curves", "weights"}
    assert any("logged no gradient statistics" in n and "gradient_stats=False" in n for n in report.notes)
    assert "logged no gradient statistics" in report.page.read_text()
    for png in report.figures.values():
        assert_not_blank(png)


def test_several_runs_overlay_and_compare(runs, tmp_path):
    report = build_report([runs["pcgrad"], runs["ew_nostats"]], tmp_path / "out", per_run=False)
    assert set(report.figures) == {"overlay_train_loss", "overlay_eval_accuracy", "conflict_rates"}
    for png in report.figures.values():
        assert_not_blank(png)
    rows = report.summary["comparison"]
    assert [r["aggregator"] for r in rows] == ["pcgrad", "sum"]
    assert sorted(r["mean_rank"] for r in rows) != [math.nan, math.nan]
    assert sum(r["mean_rank"] for r in rows) == pytest.approx(3.0)  # ranks 1 and 2 (or 1.5 twice)
    assert math.isnan(rows[1]["mean_conflict_rate"])


def test_per_layer_statistics_are_drawn_when_logged(runs, tmp_path, rng):
    run = tmp_path / "with_layers"
    shutil.copytree(runs["pcgrad"], run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        record = json.loads(line)
        if record["split"] == "train":
            jacobian = {"trunk": {"layers": [{"kernel": rng.standard_normal((2, 4, 3))} for _ in range(3)]}}
            record.update(layer_scalars(layer_statistics(jacobian), ["left", "right"]))
        out.append(json.dumps(record))
    (run / "metrics.jsonl").write_text("\n".join(out) + "\n")
    report = build_report([run], tmp_path / "out")
    assert "layers" in report.figures
    assert_not_blank(report.figures["layers"])
    assert not any("per-layer" in n for n in report.notes)


def test_cli_bad_run_directory_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert report_main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "has no metrics.jsonl" in error
    assert not out.exists()


def test_cli_writes_the_page(runs, tmp_path, capsys):
    assert report_main(["report", str(runs["ew_nostats"]), "--out", str(tmp_path / "out")]) == 0
    assert "report:" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.html").is_file()


def test_update_cosine_and_gms_match_float64_reference(rng):
    jacobian = rng.standard_normal((5, 3, 40))  # (steps, T, P)
    weights = rng.uniform(0.1, 2.0, (5, 3))
    weights[1] = 1.0
    gramians = np.einsum("stp,sup->stu", jacobian, jacobian)
    got = update_mean_cosine(gramians, weights)
    for s in range(5):
        d, mean = weights[s] @ jacobian[s], jacobian[s].mean(axis=0)
        assert got[s] == pytest.approx(d @ mean / np.linalg.norm(d) / np.linalg.norm(mean), rel=1e-10)
    assert got[1] == pytest.approx(1.0)
    norms = np.linalg.norm(jacobian, axis=-1)
    gms = magnitude_similarity(norms)
    assert gms[2, 0, 1] == pytest.approx(2 * norms[2, 0] * norms[2, 1] / (norms[2, 0] ** 2 + norms[2, 1] ** 2))
    assert np.allclose(np.diagonal(gms, axis1=1, axis2=2), 1.0)
    assert magnitude_similarity(np.zeros(2))[0, 1] == 1.0 and np.isnan(update_mean_cosine(np.zeros((1, 2, 2)), np.ones((1, 2))))[0]

"""The comparison table (Δm%, mean rank) and downsampling, on hand-written run directories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.report import build_report, read_run
from mtl_jax.report.downsample import downsample
from mtl_jax.report.tables import comparison_rows, mean_ranks


def write_run(path: Path, aggregator: str, test: dict, *, records: list[dict] | None = None, baselines=None) -> Path:
    path.mkdir(parents=True)
    tasks = list(test)
    (path / "config.json").write_text(json.dumps({"aggregator": aggregator, "tasks": tasks, "mode": "full", "seed": 0,
                                                  "baselines": baselines or {}, "eval_split": "validation"}))
    (path / "results.json").write_text(json.dumps({"step": 10, "test": test}))
    records = records or [{"step": s, "split": "train", **{f"loss/{t}": 1.0 / s for t in tasks}} for s in (1, 5, 10)]
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_delta_m_and_mean_rank_against_single_task_runs(tmp_path):
    a = write_run(tmp_path / "a", "pcgrad", {"x": {"accuracy": 0.9}, "y": {"mae": 2.0}})
    b = write_run(tmp_path / "b", "mgda", {"x": {"accuracy": 0.8}, "y": {"mae": 1.0}})
    c = write_run(tmp_path / "c", "sum", {"x": {"accuracy": 0.7}, "y": {"mae": 3.0}})
    sx = write_run(tmp_path / "sx", "sum", {"x": {"accuracy": 0.8}})
    sy = write_run(tmp_path / "sy", "sum", {"y": {"mae": 2.0}})
    runs = [read_run(p) for p in (a, b, c, sx, sy)]
    rows, note = comparison_rows(runs)
    assert "single-task runs" in note
    # Δm% = 100/K Σ (−1)^{l_k} (M_m − M_b)/M_b: accuracy up is better, MAE down is better.
    expected = [100 / 2 * (-(0.9 - 0.8) / 0.8 + (2.0 - 2.0) / 2.0), 100 / 2 * (0.0 + (1.0 - 2.0) / 2.0),
                100 / 2 * (-(0.7 - 0.8) / 0.8 + (3.0 - 2.0) / 2.0)]
    assert [r["delta_m"] for r in rows[:3]] == pytest.approx(expected)
    assert all(math.isnan(r["delta_m"]) for r in rows[3:])
    # ranks on x accuracy: a 1, b 2, c 3; on y MAE: b 1, a 2, c 3.
    assert [r["mean_rank"] for r in rows[:3]] == pytest.approx([1.5, 1.5, 3.0])


def test_mean_rank_shares_ties():
    class Fake:
        def __init__(self, acc):
            self.results, self.tasks = {"test": {"x": {"accuracy": acc}}}, ["x"]

    assert mean_ranks([Fake(0.5), Fake(0.5), Fake(0.1)]) == pytest.approx([1.5, 1.5, 3.0])


def test_delta_m_from_results_when_baselines_are_shared(tmp_path):
    base = {"x": "/runs/single-x", "y": "/runs/single-y"}
    a = write_run(tmp_path / "a", "pcgrad", {"x": {"accuracy": 0.9}, "y": {"accuracy": 0.7}}, baselines=base)
    b = write_run(tmp_path / "b", "mgda", {"x": {"accuracy": 0.8}, "y": {"accuracy": 0.6}}, baselines=base)
    for path, value in ((a, -3.0), (b, 1.5)):
        results = json.loads((path / "results.json").read_text()) | {"delta_m": value}
        (path / "results.json").write_text(json.dumps(results))
    rows, note = comparison_rows([read_run(a), read_run(b)])
    assert [r["delta_m"] for r in rows] == [-3.0, 1.5] and "share" in note


def test_downsample_keeps_short_series_and_averages_long_ones(rng):
    steps, values = np.arange(50), rng.standard_normal(50)
    same_steps, same_values = downsample(steps, values, 100)
    assert np.array_equal(same_steps, steps) and np.array_equal(same_values, values)
    steps, values = np.arange(10_000), rng.standard_normal(10_000)
    few_steps, few_values = downsample(steps, values, 400)
    assert few_steps.shape == few_values.shape == (400,)
    assert np.all(np.diff(few_steps) > 0)
    assert few_values.mean() == pytest.approx(values.mean(), abs=1e-12)  # equal buckets of 25
    assert few_values[0] == pytest.approx(values[:25].mean())


def test_long_metric_file_gives_a_small_page(tmp_path, rng):
    tasks = ["a", "b", "c"]
    records = []
    for step in range(1, 3_001):
        norms = rng.uniform(0.1, 2.0, 3)
        cos = rng.uniform(-1, 1, 3)
        records.append({"step": step, "split": "train", **{f"loss/{t}": 1.0 / step**0.3 for t in tasks},
                        **{f"weight/{t}": 1.0 for t in tasks}, **{f"grad_norm/{t}": n for t, n in zip(tasks, norms)},
                        "grad_cosine/a~b": cos[0], "grad_cosine/a~c": cos[1], "grad_cosine/b~c": cos[2],
                        "conflict_fraction": float(np.mean(cos < 0))})
    run = write_run(tmp_path / "long", "upgrad", {t: {"accuracy": 0.5} for t in tasks}, records=records)
    report = build_report([run], tmp_path / "out")
    assert report.page.stat().st_size < 3_000_000
    expected = np.mean([r["conflict_fraction"] for r in records])
    assert report.summary["runs"][0]["mean_conflict_rate"] == pytest.approx(expected, abs=1e-12)


def test_truncated_last_line_is_ignored_and_a_bad_middle_line_is_named(tmp_path):
    run = write_run(tmp_path / "r", "sum", {"x": {"accuracy": 0.5}})
    with open(run / "metrics.jsonl", "a") as stream:
        stream.write('{"step": 11, "spl')
    assert read_run(run).steps("train", "loss/x").tolist() == [1, 5, 10]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    from mtl_jax.errors import DataError

    with pytest.raises(DataError, match="line 2"):
        read_run(run)


def _stat_records(rng, steps, extra=lambda step: {}):
    records = []
    for step in steps:
        cos = float(rng.uniform(-1, 1))
        records.append({"step": step, "split": "train", "loss/a": 1.0 / step, "loss/b": 2.0 / step,
                        "weight/a": 1.0, "weight/b": 0.5, "grad_norm/a": float(rng.uniform(0.5, 1)),
                        "grad_norm/b": float(rng.uniform(0.5, 1)), "grad_cosine/a~b": cos,
                        "conflict_fraction": float(cos < 0), **extra(step)})
    return records


def test_jacobian_level_method_gets_a_note_instead_of_the_update_cosine(tmp_path, rng):
    run = write_run(tmp_path / "gd", "graddrop", {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.6}},
                    records=_stat_records(rng, range(1, 30, 2)))
    report = build_report([run], tmp_path / "out")
    assert "update_cosine" not in report.figures and "conflict_rate" in report.figures
    assert any("graddrop forms its update from J itself" in n and "update_cosine" in n for n in report.notes)


def test_a_logged_update_cosine_is_drawn_as_logged(tmp_path, rng):
    run = write_run(tmp_path / "gd", "graddrop", {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.6}},
                    records=_stat_records(rng, range(1, 30, 2), lambda step: {"update_cosine": 1.0 / step}))
    report = build_report([run], tmp_path / "out")
    assert "update_cosine" in report.figures
    expected = np.mean([1.0 / s for s in range(1, 30, 2)])
    assert report.summary["runs"][0]["mean_update_cosine"] == pytest.approx(expected)

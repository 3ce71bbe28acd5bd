"""The exported artifact: metadata, loading with jax + numpy only, format versions, and
parity with the in-process model on the test split of every experiment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mtl_jax.cli.deploy import main as deploy_main
from mtl_jax.deploy import artifact
from mtl_jax.deploy.artifact import FORMAT, load_artifact, read_metadata
from tests.deploy.conftest import DANTE_SLICE, ROOT
from tests.test_experiments import EXPERIMENTS, dataset_of, slice_of

NO_FLAX = """
import sys
for name in ("flax", "optax", "orbax", "orbax.checkpoint", "tensorflow_datasets", "grain", "mtl_jax.models"):
    sys.modules[name] = None  # importing any of them now raises ImportError
import json
import numpy as np
from mtl_jax.deploy.artifact import load_artifact
from mtl_jax.deploy.predict import Predictor
model = load_artifact(sys.argv[1])
inputs = dict(np.load(sys.argv[2]))
outputs = model.run(inputs)
np.savez(sys.argv[3], **outputs)
lines = Predictor(model).predict(["PETR4 sobe forte hoje"], top_k=2)
print(json.dumps(lines[0]))
"""


def test_metadata_records_tasks_preprocessing_source_and_metrics(dante_run: Path, dante_model: Path) -> None:
    from mtl_jax.data.datasets import open_dataset  # noqa: PLC0415

    metadata = read_metadata(dante_model)
    opened = open_dataset("dante_tweets", **DANTE_SLICE)
    results = json.loads((dante_run / "results.json").read_text())
    config = json.loads((dante_run / "config.json").read_text())
    assert metadata["format"] == FORMAT
    assert metadata["versions"]["jax"] == jax.__version__
    assert "cpu" in metadata["platforms"]
    assert metadata["dataset"] == "dante_tweets"
    assert [t["name"] for t in metadata["tasks"]] == [t.name for t in opened.spec.tasks]
    kinds = {t["name"]: (t["kind"], t["labels"]) for t in metadata["tasks"]}
    assert kinds["upos"] == ("tagging", list(opened.spec.task("upos").class_names))
    assert kinds["joy"] == ("classification", ["absent", "present"])
    pre = metadata["preprocessing"]
    assert pre["vocabulary"] == list(opened.vocabulary)
    assert pre["buckets"] == list(opened.buckets) and pre["max_tokens"] == opened.buckets[-1]
    assert (pre["pad_id"], pre["unk_id"], pre["lowercase"]) == (0, 1, False)
    assert metadata["source"]["step"] == results["step"] == 2
    assert metadata["source"]["checkpoint"] == "best"
    assert metadata["source"]["config"]["dataset"] == config["dataset"]
    assert len(metadata["source"]["config_hash"]) == 40
    assert metadata["metrics"]["test"] == results["test"]
    assert metadata["metrics"]["validation"] == results["validation"]
    stored = np.load(dante_model / artifact.PARAMS_FILE)
    assert sorted(stored.files) == sorted(metadata["params"]["names"])
    assert metadata["params"]["count"] == sum(stored[name].size for name in stored.files)


def test_artifact_loads_and_runs_with_flax_unimportable(dante_model: Path, tmp_path: Path, rng) -> None:
    model = load_artifact(dante_model)
    vocabulary = len(model.metadata["preprocessing"]["vocabulary"])
    tokens = rng.integers(2, vocabulary, size=(3, 16)).astype(np.int32)
    mask = np.arange(16)[None, :] < rng.integers(1, 17, size=(3, 1))
    inputs = {"tokens": np.where(mask, tokens, 0), "tokens_mask": mask}
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", NO_FLAX, str(dante_model), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["tokens"] == ["PETR4", "sobe", "forte", "hoje"]
    assert len(line["tasks"]["upos"]["tags"]) == 4 and len(line["tasks"]["joy"]["top_k"]) == 2
    outside = np.load(tmp_path / "out.npz")
    inside = model.run(inputs)
    for name, value in inside.items():
        np.testing.assert_array_equal(outside[name], value)


def test_another_format_version_is_one_line_naming_both(dante_model: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / "old"
    shutil.copytree(dante_model, old)
    metadata = json.loads((old / "metadata.json").read_text())
    metadata["format"] = "mtl_jax.export/0"
    (old / "metadata.json").write_text(json.dumps(metadata))
    assert deploy_main(["predict", "--model", str(old), "--text", "PETR4 sobe"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "mtl_jax.export/0" in captured.err and FORMAT in captured.err


@pytest.mark.parametrize(
    "make_bad, expected",
    [
        (lambda d: (d / "metadata.json").unlink(), "metadata.json"),
        (lambda d: (d / "metadata.json").write_text("{not json"), "corrupt"),
        (lambda d: (d / "inference.jax").write_bytes(b"garbage"), "inference.jax"),
        (lambda d: (d / "params.npz").unlink(), "params.npz"),
    ],
    ids=["no-metadata", "corrupt-metadata", "corrupt-function", "no-params"],
)
def test_broken_artifact_is_one_line_exit_2(dante_model: Path, tmp_path: Path, capsys, make_bad, expected) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(dante_model, broken)
    make_bad(broken)
    assert deploy_main(["predict", "--model", str(broken), "--text", "PETR4 sobe"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_export_refuses_bad_workdir_and_occupied_out(dante_run: Path, dante_model: Path, tmp_path: Path, capsys) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert deploy_main(["export", "--workdir", str(dante_run), "--out", str(occupied)]) == 2
    assert (occupied / "keep.txt").read_text() == "mine" and len(list(occupied.iterdir())) == 1
    before = (dante_model / "metadata.json").read_text()
    assert deploy_main(["export", "--workdir", str(dante_run), "--out", str(dante_model)]) == 2
    assert (dante_model / "metadata.json").read_text() == before
    assert deploy_main(["export", "--workdir", str(tmp_path / "nothing"), "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "--overwrite" in errors[1] and "config.json" in errors[2]


def input_batch(experiment, layout: dict, size: int = 8) -> dict[str, np.ndarray]:
    batch = next(iter(experiment.data.eval_batches("test", batch_size=size)))
    return {key: np.asarray(batch[key]) for key in layout}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_artifact_matches_the_in_process_model_on_the_test_split(path: Path, tmp_path: Path) -> None:
    """max |artifact − model| ≤ 1e-5 (float32) on test examples, for every experiment."""
    from mtl_jax.deploy.export import export_model, input_layout  # noqa: PLC0415
    from mtl_jax.deploy.source import text_preprocessing  # noqa: PLC0415
    from mtl_jax.training.experiment import Experiment  # noqa: PLC0415

    dataset = dataset_of(path)
    if "multi_fashion" in ([dataset] if isinstance(dataset, str) else dataset):
        from mtl_jax.data.builders import multi_fashion  # noqa: PLC0415
        from mtl_jax.errors import DataError  # noqa: PLC0415

        try:
            multi_fashion.source_dir()
        except DataError as error:
            pytest.skip(f"Debian's dataset-fashion-mnist is not installed: {error}")
    namespace: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102 - our own config
    config = namespace["get_config"]()
    config.update(dataset_options=slice_of(dataset), batch_size=16, eval_batch_size=16, steps=1)
    experiment = Experiment.from_config(config)
    params = jax.tree.map(lambda x: x + 0.01 * np.sign(np.asarray(x)), experiment.params)  # not the init
    out = export_model(tmp_path / "model", experiment.model, params, experiment.data.spec,
                       text=text_preprocessing(experiment.data))  # fmt: skip
    model = load_artifact(out)
    inputs = input_batch(experiment, input_layout(experiment.data.spec))
    expected = jax.jit(experiment.model.apply)(params, inputs)
    got = model.run(inputs)
    assert set(got) == set(experiment.task_names)
    for name in got:
        assert got[name].shape == expected[name].shape
        assert float(np.max(np.abs(got[name] - np.asarray(expected[name])))) <= 1e-5, name

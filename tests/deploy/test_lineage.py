"""``load_init_params``: fine-tuning from a run or an exported model, with lineage."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from mtl_jax.deploy.artifact import PARAMS_FILE
from mtl_jax.deploy.lineage import load_init_params, save_lineage
from mtl_jax.deploy.naming import named_leaves
from mtl_jax.errors import ConfigError
from tests.deploy.conftest import DANTE_SLICE


def fresh_params(run_dir: Path, seed: int = 7, **model_changes):
    from flax import nnx  # noqa: PLC0415

    from mtl_jax.data.datasets import open_dataset  # noqa: PLC0415
    from mtl_jax.models.factory import build_from_config  # noqa: PLC0415

    config = json.loads((run_dir / "config.json").read_text())
    spec = open_dataset("dante_tweets", **DANTE_SLICE).spec
    model_config = {**config["model"], **model_changes}
    return build_from_config(model_config, spec, [t.name for t in spec.tasks], nnx.Rngs(seed))[1]


def test_init_from_an_export_and_from_its_run_give_the_trained_parameters(dante_run: Path, dante_model: Path) -> None:
    template = fresh_params(dante_run)
    stored = np.load(dante_model / PARAMS_FILE)
    for source in (dante_model, dante_run):
        params, lineage = load_init_params(source, template)
        assert jax.tree.structure(params) == jax.tree.structure(template)
        for name, value in named_leaves(params).items():
            np.testing.assert_array_equal(np.asarray(value), stored[name])
        assert lineage["initialised_fresh"] == [] and len(lineage["loaded"]) == len(stored.files)
        assert lineage["path"] == str(source.resolve())
    assert load_init_params(dante_model, template)[1]["kind"] == "export"
    run_lineage = load_init_params(dante_run, template)[1]
    assert run_lineage["kind"] == "run" and run_lineage["source"]["step"] == 2


def test_a_new_task_head_keeps_its_fresh_initialisation(dante_run: Path, dante_model: Path) -> None:
    template = fresh_params(dante_run)
    new_head = jax.tree.map(lambda x: x + 1.0, template["tasks"]["joy"])
    template["tasks"]["new_task"] = new_head
    params, lineage = load_init_params(dante_model, template)
    assert sorted(lineage["initialised_fresh"]) == sorted(f"tasks.new_task.{n}" for n in named_leaves(new_head))
    for a, b in zip(jax.tree.leaves(params["tasks"]["new_task"]), jax.tree.leaves(new_head)):
        np.testing.assert_array_equal(a, b)


def test_mismatched_shapes_or_trunks_are_one_line_config_errors(dante_run: Path, dante_model: Path, tmp_path: Path) -> None:
    wider = fresh_params(dante_run, hidden=24)
    with pytest.raises(ConfigError, match="has shape") as error:
        load_init_params(dante_model, wider)
    assert "\n" not in str(error.value)
    other_trunk = {"shared": {"other": {"kernel": np.zeros((2, 2), np.float32)}}, "tasks": {}}
    with pytest.raises(ConfigError, match="shares none"):
        load_init_params(dante_model, other_trunk)
    with pytest.raises(ConfigError, match="neither a run directory"):
        load_init_params(tmp_path, other_trunk)


def test_lineage_of_a_fine_tuned_run_reaches_its_export(dante_run: Path, dante_model: Path, tmp_path: Path) -> None:
    """A run initialised from an export records it; exporting that run records the chain."""
    import shutil  # noqa: PLC0415

    from mtl_jax.deploy.export import export_run  # noqa: PLC0415
    from mtl_jax.deploy.source import open_run  # noqa: PLC0415

    child = tmp_path / "child"
    shutil.copytree(dante_run, child)
    _, lineage = load_init_params(dante_model, fresh_params(dante_run))
    save_lineage(child, lineage)
    out = export_run(open_run(child, "latest"), tmp_path / "child_model", platforms=("cpu",))
    metadata = json.loads((out / "metadata.json").read_text())
    (entry,) = metadata["lineage"]
    assert entry["kind"] == "export" and entry["path"] == str(dante_model.resolve())
    assert entry["source"]["run_dir"] == str(dante_run.resolve()) and entry["source"]["step"] == 2
    assert metadata["platforms"] == ["cpu"] and metadata["source"]["checkpoint"] == "latest"

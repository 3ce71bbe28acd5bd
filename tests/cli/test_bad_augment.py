"""Bad ``augment`` and ``auxiliary_tasks`` through the real entry point, with a finished run in
the way and ``--overwrite``: exit 2, at most three lines on stderr, no traceback, and not a
byte of the run directory or the prepared data changed (every check runs before anything is
written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mtl_jax.cli.main import main
from mtl_jax.training import data_source
from tests.cli.conftest import assert_refused, checksums
from tests.training.small_run import tiny_config, train_args

AUGMENT_CASES = [
    (["augment={'rotate': True}"], "augment.rotate: unknown augmentation; did you mean 'rotation'?"),
    (["augment.shiift=2"], "augment.shiift: unknown augmentation; did you mean 'shift'?"),
    (["augment=['shift']"], "--set augment: expected a value of type dict"),
    (["augment={'token_deletion': 0.1}"], "augment.token_deletion needs text input, but dataset 'multi_mnist' has image input"),
    (["augment={'span_mask': 0.1, 'span_length': 2}"], "needs text input, but dataset 'multi_mnist' has image input"),
    (["augment={'rotation': True}"], "augment.rotation needs graph input"),
    (["augment={'flip': True}"], "augment.flip: dataset 'multi_mnist' has tasks 'left' and 'right'"),
    (["augment={'flip': 'yes'}"], "augment.flip: expected true or false"),
    (["augment.shift=-1"], "augment.shift: expected a non-negative int (pixels), got -1"),
    (["augment.shift=2.5"], "augment.shift: expected a non-negative int (pixels), got 2.5"),
    (["augment.shift=True"], "augment.shift: expected a non-negative int (pixels), got True"),
    (["augment.crop=1.5"], "augment.crop: expected a number in [0.0, 1.0], got 1.5"),
    (["augment.crop=0.0"], "augment.crop: the smallest side fraction must be > 0"),
]
AUXILIARY_CASES = [
    (["auxiliary_tasks=['top']"], "config key 'auxiliary_tasks' is 'top'"),
    (["auxiliary_tasks='left'"], "--set auxiliary_tasks: expected a value of type list"),
    (["auxiliary_tasks=['left', 'left']"], "'auxiliary_tasks' lists a task twice"),
    (["auxiliary_tasks=['left', 'right']"], "'auxiliary_tasks' names every task"),
    (["tasks=[]", "auxiliary_tasks=['middle']"], "config key 'auxiliary_tasks' is 'middle'"),
    (["tasks=[]", "auxiliary_tasks=['right', 'left']"], "'auxiliary_tasks' names every task"),
    (["auxiliary_tasks=['left']", "baselines={'left': 'runs/single-left'}"], "'baselines' names only auxiliary tasks"),
    (["aggregator='pcd'", "aggregator_options={'primary': []}"], "at least one primary task"),
    (["aggregator='pcd'", "auxiliary_tasks=['left']", "aggregator_options={'primary': [0]}"], "give the primary tasks once"),
]
CASES = AUGMENT_CASES + AUXILIARY_CASES


@pytest.fixture(scope="module")
def data_dir() -> Path:
    """The prepared data of the tiny experiment (prepared here, before any checksum)."""
    data_source.open_data(tiny_config())
    return Path(os.environ["MTL_JAX_DATA_DIR"])


@pytest.mark.parametrize("overrides, pattern", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_augment_or_auxiliary_tasks_write_nothing(finished_run, data_dir, capsys, overrides, pattern):  # noqa: F811
    before, data_before = checksums(finished_run), checksums(data_dir)
    args = train_args(finished_run, "--overwrite") + [x for item in overrides for x in ("--set", item)]
    assert_refused(main(args), capsys.readouterr().err, pattern)
    assert checksums(finished_run) == before and checksums(data_dir) == data_before


def test_good_augment_and_auxiliary_values_pass_the_checks():
    config = tiny_config(augment={"shift": 1, "crop": 0.9}, auxiliary_tasks=["left"], aggregator="pcd")
    assert config.augment == {"shift": 1, "crop": 0.9} and config.auxiliary_tasks == ("left",)
    assert config.to_dict()["auxiliary_tasks"] == ["left"]

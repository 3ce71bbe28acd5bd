"""Bad input to `mtl-jax compare`: one line, exit code 2, nothing trained or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtl_jax.cli.tune import main
from tests.tuning.helpers import write_experiment

CASES = {
    "unknown method": (["--methods", "pcgradd"], "--methods 'pcgradd': config key 'aggregator' is 'pcgradd'; did you mean 'pcgrad'?"),
    "mode the method lacks": (["--methods", "sum", "mgda_ub:full"], "mgda_ub"),
    "unknown mode": (["--methods", "sum:sideways"], "sideways"),
    "seeds 0": (["--methods", "sum", "--seeds", "0"], "--seeds must be a positive integer, got 0"),
    "a method twice": (["--methods", "sum", "sum"], "lists a method twice"),
    "a misspelt --set": (["--methods", "sum", "--set", "stepz=3"], "stepz"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_compare_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys, case: str) -> None:
    extra, expected = CASES[case]
    args = ["compare", "--config", str(write_experiment(tmp_path, space=None)), "--workdir", str(tmp_path / "cmp"),
            "--baselines-dir", str(tmp_path / "base"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mtl-jax: error: ") and expected in err
    assert not (tmp_path / "cmp").exists() and not (tmp_path / "base").exists()

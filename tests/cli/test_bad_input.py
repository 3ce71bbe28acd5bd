"""Bad input through the real entry point, with a finished run in the way: exit 2, at most
three lines on stderr, no traceback, and not a byte of the run directory changed, even with
``--overwrite`` (every check runs before anything is deleted or written), and nothing in the
data directory changed either (no half-prepared dataset, no empty directory)."""

from __future__ import annotations

import json

import pytest

from mtl_jax.cli.main import main
from tests.cli.conftest import assert_refused, checksums, data_dir_state
from tests.training.small_run import CONFIG, tiny_config, train_args


OVERWRITE_CASES = [
    (["aggregator='moco'", "mode='representation'"], "aggregator 'moco' supports only full"),
    (["aggregator='mgda_ub'"], "aggregator 'mgda_ub' supports only representation"),
    (["aggregator='krum'"], "aggregator 'krum' with options {} does not fit 2 tasks"),
    (["aggregator='constant'", "aggregator_options={'weights': [1.0, 2.0, 3.0]}"], "does not fit 2 tasks"),
    (["aggregator='cagrad'", "aggregator_options={'c': -1.0}"], "aggregator 'cagrad' rejects options"),
    (["aggregator='cagrad'", "aggregator_options={'c': 'x'}"], "aggregator 'cagrad' rejects options"),
    (["optimizer.learning_rate=1e999"], "'optimizer.learning_rate' must be a positive number, got inf"),
    (["optimizer.learning_rate=0.0"], "'optimizer.learning_rate' must be a positive number, got 0.0"),
    (["optimizer.learning_rate=-0.001"], "'optimizer.learning_rate' must be a positive number"),
    (["optimizer={'name': 'adam', 'learning_rate': 0.1, 'b1': [0.9]}"], "'optimizer.b1' must be a finite number"),
    (["steps=99999999999999999999"], "larger than the largest accepted value"),
    (["batch_size=0"], "'batch_size' must be a positive integer"),
    (["batch_size=True"], "expected a value of type int (like 32), got True"),
    (["batch_size=601"], "exceeds the"),
    (["eval_batch_size=10**9"], "expected a value of type int"),
    (["eval_batch_size=1000000000"], "larger than the largest accepted value 65536"),
    (["log_every=-2"], "'log_every' must be a positive integer"),
    (["checkpoint.keep=-1"], "'checkpoint.keep' must be a positive integer"),
    (["model.hidden=0"], "model.hidden: expected a positive int"),
    (["model.widths=[0]"], "model.widths: expected a tuple of positive ints"),
    (["model.dropout=1.0"], "model.dropout: expected a rate in [0, 1)"),
    (["dataset_options.num_train=-5"], "'dataset_options.num_train' is -5"),
    (["dataset_options.num_train=0"], "'dataset_options.num_train' is 0; expected an integer in [1, 2147483647]"),
    (["dataset_options={'num_train': 600, 'num_test': [200]}"], "'dataset_options.num_test' is [200]"),
    (["dataset_options={'num_train': 600, 'num_test': 200, 'seed': 'abc'}"], "'dataset_options.seed' is 'abc'"),
    (["dataset_options={'num_train': 600, 'num_test': 200, 'validation_fraction': 1.5}"], "validation_fraction' must be in (0, 1)"),
    (["model.trunk='bilstm'"], "does not fit dataset 'multi_mnist'"),
    (["eval_split='dev'"], "'eval_split' is 'dev'"),
]


@pytest.mark.parametrize("overrides, pattern", OVERWRITE_CASES, ids=[" ".join(c[0])[:50] for c in OVERWRITE_CASES])
def test_bad_input_with_overwrite_deletes_and_writes_nothing(data_before, finished_run, capsys, overrides, pattern):
    before = checksums(finished_run)
    args = train_args(finished_run, "--overwrite") + [x for item in overrides for x in ("--set", item)]
    assert_refused(main(args), capsys.readouterr().err, pattern)
    assert checksums(finished_run) == before and data_dir_state() == data_before


FILE_CASES = [
    ("experiment.py", "def get_config():\n    raise KeyError('lr')\n", "get_config() raised KeyError"),
    ("experiment.py", "def get_config():\n    return [('steps', 3)]\n", "returned a list, not a dict"),
    ("experiment.py", "def get_config(name):\n    return {}\n", "get_config takes the arguments ['name']"),
    ("experiment.py", "import sys\nsys.exit(3)\n", "failed to load: SystemExit"),
    ("experiment.py", "get_config = 3\n", "defines no get_config()"),
    ("experiment.py", "def get_config():\n    return {'steps': 3}\n", "config misses the required keys"),
    ("experiment.json", '{"dataset": "multi_mnist"}', "is not a Python file (.py)"),
    ("experiment.txt", "def get_config():\n    return {}\n", "is not a Python file (.py)"),
]


@pytest.mark.parametrize("name, content, pattern", FILE_CASES, ids=[c[2][:30] for c in FILE_CASES])
def test_bad_experiment_file_is_one_line(data_before, tmp_path, finished_run, capsys, name, content, pattern):
    path = tmp_path / name
    path.write_text(content)
    before = checksums(finished_run)
    code = main(["train", "--config", str(path), "--workdir", str(finished_run), "--overwrite"])
    assert_refused(code, capsys.readouterr().err, pattern)
    assert checksums(finished_run) == before and data_dir_state() == data_before


def test_eval_of_a_run_without_checkpoints_writes_nothing(data_before, finished_run, capsys):
    for path in sorted(finished_run.glob("checkpoints/**/*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (finished_run / "checkpoints").rmdir()
    before = checksums(finished_run)
    code = main(["eval", "--workdir", str(finished_run)])
    assert_refused(code, capsys.readouterr().err, "holds no checkpoint; train the run first")
    assert checksums(finished_run) == before and not (finished_run / "checkpoints").exists()
    assert data_dir_state() == data_before


def test_eval_of_checkpoints_from_another_model_says_to_retrain(data_before, finished_run, capsys):
    before = checksums(finished_run)
    code = main(["eval", "--workdir", str(finished_run)])
    assert_refused(code, capsys.readouterr().err, "retrain the run with `mtl-jax train --overwrite`")
    assert checksums(finished_run) == before and data_dir_state() == data_before


def test_an_unreadable_saved_config_is_one_line(data_before, finished_run, capsys):
    (finished_run / "config.json").write_text(json.dumps({**tiny_config().to_dict(), "steps": "twelve"}))
    before = checksums(finished_run)
    assert_refused(main(train_args(finished_run)), capsys.readouterr().err, "this version cannot read")
    assert checksums(finished_run) == before and data_dir_state() == data_before


def test_config_file_still_named_in_the_missing_file_error(data_before, tmp_path, capsys):
    code = main(["train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "run")])
    assert_refused(code, capsys.readouterr().err, "does not exist; pass e.g. --config")
    assert CONFIG.is_file() and not (tmp_path / "run").exists() and data_dir_state() == data_before


def test_ctrl_c_before_training_is_one_line_exit_130(data_before, tmp_path, finished_run, capsys):
    path = tmp_path / "experiment.py"
    path.write_text("def get_config():\n    raise KeyboardInterrupt\n")
    before = checksums(finished_run)
    code = main(["train", "--config", str(path), "--workdir", str(finished_run)])
    err = capsys.readouterr().err
    assert code == 130 and err.strip().splitlines() == [
        "mtl-jax: interrupted (Ctrl-C); run the same command to resume from the last checkpoint"
    ]
    assert checksums(finished_run) == before and data_dir_state() == data_before


JOB = ["--coordinator", "127.0.0.1:1234", "--num-processes", "2"]
DISTRIBUTED_CASES = [
    ([*JOB, "--process-id", "0", "--heartbeat-timeout", "0"], "--heartbeat-timeout 0: expected a positive number of seconds"),
    (["--coordinator", "127.0.0.1:1234"], "--coordinator, --num-processes and --process-id go together"),
    (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "expected HOST:PORT"),
    ([*JOB, "--process-id", "2"], "--process-id 2: expected 0..1 for 2 processes"),
]


@pytest.mark.parametrize("extra, pattern", DISTRIBUTED_CASES, ids=[c[1][:30] for c in DISTRIBUTED_CASES])
def test_bad_multi_process_arguments_are_one_line_before_any_write(data_before, finished_run, capsys, monkeypatch, extra, pattern):
    monkeypatch.setenv("MTL_JAX_SUPERVISED", "1")  # this process is the trainer: no child to relay
    before = checksums(finished_run)
    assert_refused(main(train_args(finished_run, "--overwrite", *extra)), capsys.readouterr().err, pattern)
    assert checksums(finished_run) == before and data_dir_state() == data_before

"""Bad input through the real entry point: one clear line naming the key and the accepted
values, exit code 2, nothing compiled and nothing written."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from mtl_jax.cli.main import main
from mtl_jax.data.spec import DatasetSpec, TaskSpec
from mtl_jax.errors import DataError
from mtl_jax.training import data_source
from mtl_jax.training.experiment import Experiment
from tests.training.small_run import CONFIG, tiny_config, train_args

CASES = [
    (["aggregator='pcgard'"], r"'aggregator' is 'pcgard'; did you mean 'pcgrad'\?.*Accepted values: .*upgrad"),
    (["mode='layer'"], "Accepted values: full, instance, representation"),
    (["dataset='mnist3'"], r"'dataset' is 'mnist3'.*Accepted values: .*multi_mnist"),
    (["optimizer.name='adamax'"], "Accepted values: adam, adamw, sgd"),
    (["optimizer.learnig_rate=0.1"], "did you mean 'optimizer.learning_rate'"),
    (["stpes=10"], "did you mean 'steps'"),
    (["steps=-3"], "'steps' must be a positive integer"),
    (["steps='many'"], "expected a value of type int"),
    (["batch_size"], "expected key=value"),
    (["model.trunk='resnett'"], r"model.trunk: unknown value 'resnett'; accepted values: .*resnet"),
    (["model.trunk='bilstm'"], r"model.trunk: 'bilstm' does not fit dataset 'multi_mnist', whose input is image"),
    (["tasks=['left', 'middle']"], "'tasks' is 'middle'.*Accepted values: left, right"),
    (["tasks=['left', 'left']"], "lists a task twice"),
    (["tasks=['left', 3]"], "'tasks' must be a list of task names"),
    (["nonfinite='ignore'"], "'nonfinite' is 'ignore'.*Accepted values: skip, stop"),
    (["best_metric='left/bleu'"], r"best_metric \(metric part\).*Accepted values: accuracy, loss, macro_f1"),
    (["best_metric='center/accuracy'"], r"best_metric \(task part\).*Accepted values: left, mean, right"),
    (["best_metric='accuracy'"], "expected '<task>/<metric>'"),
    (["eval_split='dev'"], "'eval_split' is 'dev'.*Accepted values: test, train, validation"),
    (["checkpoint.keep=0"], "'checkpoint.keep' must be a positive integer"),
    (["checkpoint.evry=5"], "did you mean 'checkpoint.every'"),
    (["log_every=0"], "'log_every' must be a positive integer"),
    (["eval_batch_size=0"], "'eval_batch_size' must be a positive integer"),
    (["jacobian_chunk=-1"], "'jacobian_chunk' must be a non-negative integer"),
    (["gradient_stats=1"], "expected True or False"),
    (["model.hidden=[]"], r"model.hidden: expected a value of type int"),
    (["model.widht=3"], r"model.widht.*did you mean 'model.widths'"),
    (["dataset=['multi_mnist', 'multi_mnist']"], "'dataset' must be a name or a list of 2\\+ distinct names"),
    (["dataset=['multi_mnist', 'mnist3']", "dataset_options={}"], r"'dataset' is 'mnist3'.*Accepted values: .*multi_fashion"),
    (["dataset=['multi_mnist', 'multi_fashion']", "dataset_options={}", "mixing.strategy='tempreature'"], r"'mixing.strategy' is 'tempreature'; did you mean 'temperature'"),
    (["dataset=['multi_mnist', 'multi_fashion']", "dataset_options={}", "mixing.temperature=0"], "'mixing.temperature' must be a positive number"),
    (["dataset=['multi_mnist', 'multi_fashion']"], r"'dataset_options' names \['num_test', 'num_train'\], not among the mixed datasets"),
    (["dataset_options={'num_trian': 5}"], "dataset_options.*num_trian.*accepted: .*num_train"),
    (["optimizer={'name': 'adam', 'lr': 0.1}"], r"'optimizer': adam does not accept \['lr'\]"),
    (["aggregator_options={'c': 0.5}"], "pcgrad.* no option 'c'"),
    (["baselines={'left': '/nonexistent/run'}"], r"'baselines.left'.*has no test results.*single-task run"),
    (["baselines={'top': '/nonexistent/run'}"], "'baselines' is 'top'.*Accepted values: left, right"),
    (["seed=1.5"], "expected a value of type int"),
]


def assert_one_line_exit_2(code: int, err: str, pattern: str) -> None:
    assert code == 2, err
    assert err.startswith("mtl-jax: error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), err


@pytest.mark.parametrize("overrides, pattern", CASES, ids=[c[0][0][:40] for c in CASES])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, overrides, pattern):
    workdir = tmp_path / "run"
    args = train_args(workdir) + [x for item in overrides for x in ("--set", item)]
    code = main(args)
    assert_one_line_exit_2(code, capsys.readouterr().err, pattern)
    assert not workdir.exists()


def test_labels_that_do_not_fit_the_head(tmp_path):
    config = tiny_config()
    data = data_source.open_data(config)
    spec = DatasetSpec(data.spec.name, data.spec.input, (TaskSpec("left", "classification", 5), data.spec.tasks[1]))
    with pytest.raises(DataError, match=r"task 'left': label \d does not fit the head's 5 classes \(accepted: 0..4\)"):
        Experiment.from_config(config, data=dataclasses.replace(data, spec=spec))


@pytest.mark.parametrize(
    "content, pattern",
    [(None, "does not exist"), ("x = 1\n", "defines no get_config"), ("def get_config(:\n", "failed to load: SyntaxError")],
)
def test_bad_config_file(tmp_path, capsys, content, pattern):
    path = tmp_path / "experiment.py"
    if content is not None:
        path.write_text(content)
    code = main(["train", "--config", str(path), "--workdir", str(tmp_path / "run")])
    assert_one_line_exit_2(code, capsys.readouterr().err, pattern)


def test_eval_of_a_directory_without_a_run(tmp_path, capsys):
    code = main(["eval", "--workdir", str(tmp_path)])
    assert_one_line_exit_2(code, capsys.readouterr().err, "holds no config.json")


def test_batch_not_divisible_by_devices_fails_before_compiling(tmp_path):
    script = (
        "import os; os.environ['XLA_FLAGS']=os.environ.get('MTL_JAX_TEST_XLA_FLAGS','')+' --xla_force_host_platform_device_count=4';"
        "import sys; from mtl_jax.cli.main import main;"
        f"sys.exit(main(['train','--config',{str(CONFIG)!r},'--workdir',{str(tmp_path / 'run')!r},'--set','batch_size=66']))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert_one_line_exit_2(done.returncode, done.stderr, r"'batch_size' is 66, not divisible by the 4 devices.*\(e.g. 64 or 68\)")
    assert not (tmp_path / "run").exists()

"""``mtl-jax predict``: the training pipeline's tokenisation, JSON shapes, input files,
bad input, and accuracy equal to ``mtl-jax eval`` on the default experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.cli.deploy import main as deploy_main
from mtl_jax.data import bucketing
from mtl_jax.data.collate import TextCollate
from mtl_jax.data.text import TokenEncoder
from mtl_jax.deploy import postprocess
from mtl_jax.deploy.artifact import load_artifact
from mtl_jax.deploy.predict import Predictor, batch_sizes
from mtl_jax.deploy.preprocess import TextPreprocessor, split_words
from tests.deploy.conftest import DANTE_SLICE


def predict_lines(capsys, *args: str) -> list[dict]:
    assert deploy_main(["predict", *args]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_split_words_keeps_tickers_numbers_urls_and_splits_punctuation() -> None:
    text = "$PETR4 sobe 2,5% hoje, veja http://t.co/xY1 #VALE5 @ana sexta-feira 05/02/14!"
    assert split_words(text) == [
        "$PETR4", "sobe", "2,5", "%", "hoje", ",", "veja", "http://t.co/xY1", "#VALE5", "@ana",
        "sexta-feira", "05/02/14", "!",
    ]  # fmt: skip
    assert split_words("   ") == []


def test_text_preprocessing_is_the_training_collate(rng) -> None:
    vocabulary = ["<pad>", "<unk>", *(f"w{i}" for i in range(30))]
    metadata = {
        "input": {"kind": "text", "keys": {"tokens": {}, "tokens_mask": {}}},
        "preprocessing": {"vocabulary": vocabulary, "lowercase": True, "buckets": [16, 32], "max_tokens": 32},
    }
    pre = TextPreprocessor(metadata)
    sentences = [[f"W{k}" if k % 3 else f"x{k}" for k in rng.integers(0, 40, size=n)] for n in rng.integers(1, 30, size=6)]
    items = [pre.prepare(tokens, i) for i, tokens in enumerate(sentences)]
    length = bucketing.bucket_length(max(len(s) for s in sentences), (16, 32))
    collate = TextCollate(TokenEncoder(vocabulary, lowercase=True), {}, (), (16, 32))
    expected = collate([{"tokens": s} for s in sentences])
    got = pre.collate(items, length)
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    np.testing.assert_array_equal(got["tokens_mask"], expected["tokens_mask"])


def test_postprocess_against_float64_references(rng) -> None:
    logits = rng.normal(size=7) * 5
    reference = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    task = {"name": "t", "kind": "classification", "num_outputs": 7, "labels": list("abcdefg")}
    def predicted(task, output, **options):
        return postprocess.task_prediction(task, postprocess.batch_scores(task, np.asarray(output)[None])[0], **options)

    out = predicted(task, logits.astype(np.float32), top_k=3)
    order = np.argsort(-reference)
    assert out["label"] == "abcdefg"[order[0]]
    assert [entry["label"] for entry in out["top_k"]] == ["abcdefg"[k] for k in order[:3]]
    assert out["probability"] == pytest.approx(reference[order[0]], abs=1e-6)
    multi = {"name": "m", "kind": "multilabel", "num_outputs": 7, "labels": list("abcdefg")}
    threshold = float(rng.uniform(0.2, 0.8))
    probabilities = 1 / (1 + np.exp(-logits))
    result = predicted(multi, logits, threshold=threshold)
    assert result["labels"] == [name for name, p in zip("abcdefg", probabilities) if p >= threshold]
    mean, std = rng.normal(), rng.uniform(0.5, 3)
    regression = {"name": "r", "kind": "regression", "num_outputs": 1, "units": "eV", "target_mean": mean, "target_std": std}
    value = rng.normal()
    assert predicted(regression, np.float32(value))["value"] == pytest.approx(value * std + mean, rel=1e-6)
    extreme = postprocess.sigmoid(np.array([-800.0, 0.0, 800.0]))
    np.testing.assert_allclose(extreme, [0.0, 0.5, 1.0])


def test_batch_sizes_bound_the_compiled_shapes() -> None:
    assert batch_sizes(64) == (1, 2, 4, 8, 16, 32, 64)
    assert batch_sizes(48, factor=4) == (1, 4, 16, 48)
    assert batch_sizes(1) == (1,)


def test_predict_text_options_and_order(dante_model: Path, capsys) -> None:
    texts = ["PETR4 sobe forte hoje", "Vale cai", " ".join(["ação"] * 40)]  # three length buckets
    lines = predict_lines(capsys, "--model", str(dante_model), *[x for t in texts for x in ("--text", t)],
                          "--tasks", "upos", "joy", "--top-k", "2", "--batch-size", "2")  # fmt: skip
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["tokens"] for line in lines] == [t.split() for t in texts]
    for line in lines:
        assert set(line["tasks"]) == {"upos", "joy"}
        assert len(line["tasks"]["upos"]["tags"]) == len(line["tokens"])
        joy = line["tasks"]["joy"]
        assert joy["label"] in ("absent", "present") and len(joy["top_k"]) == 2
        assert sum(entry["probability"] for entry in joy["top_k"]) == pytest.approx(1.0, abs=1e-5)
    single = predict_lines(capsys, "--model", str(dante_model), "--text", texts[2])
    assert single[0]["tasks"]["upos"] == lines[2]["tasks"]["upos"]  # batch composition changes nothing


def test_predict_reads_txt_jsonl_csv_and_stdin_alike(dante_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import io  # noqa: PLC0415

    texts = ["PETR4 sobe forte", "Vale despenca, que dia!", "dólar estável"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    (tmp_path / "in.csv").write_text("id,body\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)), encoding="utf-8")
    model = str(dante_model)
    from_txt = predict_lines(capsys, "--model", model, "--input", str(tmp_path / "in.txt"))
    from_jsonl = predict_lines(capsys, "--model", model, "--input", str(tmp_path / "in.jsonl"), "--field", "text")
    from_csv = predict_lines(capsys, "--model", model, "--input", str(tmp_path / "in.csv"), "--column", "body")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(texts).encode())))
    from_stdin = predict_lines(capsys, "--model", model, "--input", "-")
    assert len(from_txt) == 3 and from_txt == from_jsonl == from_csv == from_stdin
    assert deploy_main(["predict", "--model", model, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.jsonl")]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()] == from_txt


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--text", ""], "no tokens"),
        (["--text", " ".join(["x"] * 500)], "tokens, more than"),
        (["--text", "ok", "--tasks", "nope"], "unknown task 'nope'"),
        (["--text", "ok", "--top-k", "0"], "--top-k"),
        (["--text", "ok", "--threshold", "1.5"], "--threshold"),
        (["--text", "ok", "--batch-size", "0"], "--batch-size"),
        (["--input", "missing.txt"], "no such file"),
        (["--input", "data.xml"], "unknown file type"),
    ],
    ids=["empty", "too-long", "task", "top-k", "threshold", "batch-size", "missing", "suffix"],
)
def test_bad_predict_input_is_one_line_exit_2(dante_model: Path, tmp_path: Path, capsys, monkeypatch, args, expected) -> None:
    monkeypatch.chdir(tmp_path)
    assert deploy_main(["predict", "--model", str(dante_model), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and expected in captured.err


def test_long_inputs_show_progress_on_stderr_and_only_json_on_stdout(dante_model: Path, tmp_path: Path, capsys) -> None:
    from mtl_jax.deploy.predict import PROGRESS_MIN_INPUTS  # noqa: PLC0415

    texts = [f"PETR4 sobe {i}" for i in range(PROGRESS_MIN_INPUTS)]
    (tmp_path / "many.txt").write_text("\n".join(texts), encoding="utf-8")
    assert deploy_main(["predict", "--model", str(dante_model), "--input", str(tmp_path / "many.txt"), "--tasks", "joy"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["index"] for line in lines] == list(range(len(texts)))
    assert f"{len(texts)}/{len(texts)}" in captured.err  # the bar, on stderr


def test_bad_jsonl_names_the_line(dante_model: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    assert deploy_main(["predict", "--model", str(dante_model), "--input", str(tmp_path / "bad.jsonl"), "--field", "text"]) == 2
    assert "line 2" in capsys.readouterr().err


def accuracy_from_predictions(lines: list[dict], examples: list[dict], emotions: list[str]) -> dict[str, float]:
    """Accuracy per task from predict's JSON: UPOS over every token, emotions over the
    tweets with a majority label (the label masks of the data pipeline)."""
    correct = {name: 0 for name in ["upos", *emotions]}
    counted = dict.fromkeys(correct, 0)
    from mtl_jax.data.builders.dante_tweets import UPOS  # noqa: PLC0415

    for line, example in zip(lines, examples):
        gold = [UPOS[k] for k in np.asarray(example["upos"])]
        correct["upos"] += sum(a == b for a, b in zip(line["tasks"]["upos"]["tags"], gold))
        counted["upos"] += len(gold)
        for name in emotions:
            if bool(example[f"{name}_mask"]):
                label = ("absent", "present")[int(example[name])]
                correct[name] += line["tasks"][name]["label"] == label
                counted[name] += 1
    return {name: correct[name] / counted[name] for name in correct if counted[name]}


def test_predict_accuracy_equals_eval_on_the_test_split(dante_run: Path, dante_model: Path, tmp_path: Path, capsys) -> None:
    from mtl_jax.cli.main import main  # noqa: PLC0415
    from mtl_jax.data.builders.dante_tweets import EMOTIONS  # noqa: PLC0415
    from mtl_jax.data.datasets import open_dataset  # noqa: PLC0415
    from mtl_jax.data.text import as_text  # noqa: PLC0415

    assert main(["eval", "--workdir", str(dante_run), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]
    test = open_dataset("dante_tweets", **DANTE_SLICE).split("test")
    examples = [test[i] for i in range(len(test))]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"tokens": [as_text(t) for t in e["tokens"]]}) + "\n" for e in examples), encoding="utf-8")
    lines = predict_lines(capsys, "--model", str(dante_model), "--input", str(path), "--field", "tokens", "--batch-size", "8")
    assert len(lines) == len(examples)
    accuracy = accuracy_from_predictions(lines, examples, list(EMOTIONS))
    assert set(accuracy) == set(evaluated)
    for name, value in accuracy.items():
        assert value == pytest.approx(evaluated[name]["accuracy"], abs=1e-12), name


def test_predictor_rows_match_one_batch_and_reorder(dante_model: Path, rng) -> None:
    """Bucketed, padded batches give each input the outputs it gets alone, in input order."""
    predictor = Predictor(load_artifact(dante_model), batch_size=4)
    vocabulary = predictor.metadata["preprocessing"]["vocabulary"][2:]
    inputs = [[vocabulary[k] for k in rng.integers(0, len(vocabulary), size=n)] for n in rng.integers(1, 60, size=11)]
    together = predictor.predict(inputs)
    assert [line["index"] for line in together] == list(range(11))
    for i in rng.choice(11, size=3, replace=False):
        alone = predictor.predict([inputs[i]])[0]
        for name, value in alone["tasks"].items():
            if "probabilities" in value and isinstance(value["probabilities"], list):
                np.testing.assert_allclose(value["probabilities"], together[i]["tasks"][name]["probabilities"], atol=1e-5)
            else:
                assert value["probability"] == pytest.approx(together[i]["tasks"][name]["probability"], abs=1e-5)


@pytest.fixture(scope="module")
def array_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small untrained image, tabular and molecule models, exported (no training needed)."""
    from flax import nnx  # noqa: PLC0415

    from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec  # noqa: PLC0415
    from mtl_jax.deploy.export import export_model  # noqa: PLC0415
    from mtl_jax.models.factory import build_from_config  # noqa: PLC0415

    cases = {
        "image": (DatasetSpec("img", InputSpec("image", "image", (6, 6)), (TaskSpec("left", "classification", 3, class_names=("a", "b", "c")),)),
                  {"trunk": "mlp", "hidden": 8}),
        "features": (DatasetSpec("tab", InputSpec("features", "features", (5,)), (TaskSpec("functions", "multilabel", 4),)),
                     {"trunk": "mlp", "hidden": 8}),
        "graph": (DatasetSpec("mol", InputSpec("graph", "atomic_numbers", (), vocab_size=10),
                              (TaskSpec("mu", "regression", 1, target_mean=2.5, target_std=1.5, units="D"),)),
                  {"trunk": "mpnn", "hidden": 8, "num_layers": 1, "num_rbf": 4}),
    }  # fmt: skip
    root = tmp_path_factory.mktemp("array_models")
    out = {}
    for kind, (spec, model_config) in cases.items():
        model, params = build_from_config(model_config, spec, [t.name for t in spec.tasks], nnx.Rngs(1))
        out[kind] = export_model(root / kind, model, params, spec, platforms=("cpu",))
    return out


def test_predict_reads_npz_and_jsonl_arrays_for_non_text_models(array_models, tmp_path: Path, capsys, rng) -> None:
    from mtl_jax.deploy.preprocess import GraphPreprocessor  # noqa: PLC0415

    images = rng.uniform(size=(3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "images.npz", image=images)
    (tmp_path / "images.jsonl").write_text("".join(json.dumps(x.tolist()) + "\n" for x in images))
    model = str(array_models["image"])
    from_npz = predict_lines(capsys, "--model", model, "--input", str(tmp_path / "images.npz"), "--top-k", "3")
    from_jsonl = predict_lines(capsys, "--model", model, "--input", str(tmp_path / "images.jsonl"), "--top-k", "3")
    assert from_npz == from_jsonl and len(from_npz) == 3
    logits = load_artifact(array_models["image"]).run({"image": images})["left"]
    assert [line["tasks"]["left"]["label"] for line in from_npz] == ["abc"[k] for k in np.argmax(logits, axis=1)]

    rows = rng.normal(size=(4, 5)).astype(np.float32)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"features": r.tolist()}) + "\n" for r in rows))
    lines = predict_lines(capsys, "--model", str(array_models["features"]), "--input", str(tmp_path / "rows.jsonl"),
                          "--threshold", "0.5")  # fmt: skip
    probabilities = 1 / (1 + np.exp(-load_artifact(array_models["features"]).run({"features": rows})["functions"]))
    for line, p in zip(lines, probabilities):
        assert line["tasks"]["functions"]["labels"] == [str(k) for k in range(4) if p[k] >= 0.5]

    molecules = [{"atomic_numbers": [6, 1, 1, 8], "positions": rng.normal(size=(4, 3)).tolist()},
                 {"atomic_numbers": [7, 1], "positions": rng.normal(size=(2, 3)).tolist()}]  # fmt: skip
    (tmp_path / "mol.jsonl").write_text("".join(json.dumps(m) + "\n" for m in molecules))
    lines = predict_lines(capsys, "--model", str(array_models["graph"]), "--input", str(tmp_path / "mol.jsonl"))
    graph = load_artifact(array_models["graph"])
    pre = GraphPreprocessor(graph.metadata)
    batch = pre.collate([pre.prepare(m, i) for i, m in enumerate(molecules)], 0)
    expected = graph.run(batch)["mu"] * 1.5 + 2.5
    assert [line["tasks"]["mu"]["units"] for line in lines] == ["D", "D"]
    np.testing.assert_allclose([line["tasks"]["mu"]["value"] for line in lines], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kind, content, expected",
    [
        ("image", [[0.0] * 6] * 5, "shape [5, 6]"),
        ("image", [[float("nan")] * 6] * 6, "NaN"),
        ("features", {"other": [0.0] * 5}, "no 'features' field"),
        ("graph", {"atomic_numbers": [6, 1], "positions": [[0, 0, 0]]}, "positions must be 2"),
        ("graph", {"atomic_numbers": [6] * 30, "positions": [[0, 0, 0]] * 30}, "1 to 29"),
        ("graph", {"atomic_numbers": [42], "positions": [[0, 0, 0]]}, "1..9"),
    ],
    ids=["image-shape", "image-nan", "features-key", "graph-positions", "graph-size", "graph-element"],
)
def test_bad_arrays_are_one_line_exit_2(array_models, tmp_path: Path, capsys, kind, content, expected) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(content) + "\n")
    assert deploy_main(["predict", "--model", str(array_models[kind]), "--input", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "input 0" in err and expected in err

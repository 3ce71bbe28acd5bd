"""The six datasets by name: ``open_dataset(name, data_dir=None, **options) -> OpenDataset``.

Options are the builder's config fields (``seed``, ``limit``, ``num_train``, ...; each
combination is prepared once, see :mod:`mtl_jax.data.builders`) plus, for text,
``min_count`` and ``lowercase`` (see :mod:`mtl_jax.data.text`).

Tasks (batch key = task name):

* ``dante_tweets`` (text): ``upos`` tagging, 17 UPOS tags; ``trust``, ``disgust``, ``joy``,
  ``sadness``, ``anticipation``, ``surprise``, ``anger``, ``fear``: 2-class
  classification (absent / present), masked where the annotators had no majority.
* ``turkish_ud`` (text): four tagging tasks, ``coarse_pos`` (column UPOS), ``fine_pos``
  (XPOS), ``morph`` (the whole FEATS bundle as one tag, ~1.5k tags) and ``deprel``; each
  tag set comes from the train split plus ``<unseen>`` (see :mod:`mtl_jax.data.text`).
  Heads are not a task (a tagger cannot predict them).
* ``multi_mnist``, ``multi_fashion`` (image 28×28): ``left``, ``right``, 10 classes. Only
  ``train`` and ``test`` splits, as in Sener & Koltun.
* ``qm9`` (graph, atoms padded to 29): 11 regressions ``mu`` … ``cv`` in normalised units,
  with ``target_mean``/``target_std`` of the train split to report MAE in the units of
  :mod:`mtl_jax.data.builders.qm9`.
* ``yeast`` (features, 103): one multilabel task ``functions`` over the 14 functional
  classes (float 0/1 (B, 14)). One multilabel task rather than 14 binary tasks: the MTL
  literature on Yeast (MULAN) treats it as one multi-label problem, and 14 heads would
  only make 14 logistic regressions out of one sigmoid layer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mtl_jax.data import bucketing, text
from mtl_jax.data.builders import common, dante_tweets, multi_fashion, multi_mnist, qm9, turkish_ud, yeast
from mtl_jax.data.collate import MAX_ATOMS, FeaturesCollate, GraphCollate, ImageCollate, TextCollate
from mtl_jax.errors import DataError
from mtl_jax.data.opened import OpenDataset
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec

SPLITS = ("train", "validation", "test")
TEXT_OPTIONS = ("min_count", "lowercase")


def prepare(builder_cls: type[common.PackageDataBuilder], data_dir: Any, **config: Any) -> common.PackageDataBuilder:
    """:func:`common.prepare`, with an unparsable ``dataset_info.json`` or ``metadata.json`` of
    the prepared directory reported as :func:`common.unreadable` (TFDS raises JSON errors)."""
    try:
        return common.prepare(builder_cls, data_dir, **config)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - TFDS parses its JSON files lazily, raising many types
        raise common.unreadable(builder_cls.name, common.resolve_data_dir(data_dir), error) from error


def sources(builder: common.PackageDataBuilder, data_dir: Any, **config: Any) -> dict[str, Sequence[Any]]:
    """Split name -> data source (:class:`RecordSource`), for every split the prepared builder has."""
    names = [split for split in SPLITS if split in builder.info.splits]
    return {split: RecordSource(common.load_split(type(builder), split, data_dir, **config), builder, split) for split in names}


def corrupt_split(dataset: str, split: str, file: str, directory: Path, problem: str) -> DataError:
    """The :class:`DataError` for a prepared split whose ``file`` cannot be read."""
    return DataError(
        f"{dataset}: the prepared {split!r} split cannot be read: {file} {problem}; fix: delete {directory}"
        " and run the same command again (the dataset is prepared afresh from its package)"
    )


class RecordSource(Sequence):
    """A prepared split's TFDS source, whose read failures are one :class:`DataError`.

    The ``array_record`` files are Riegeli files with a hash of every chunk, so a truncated,
    overwritten or deleted shard fails when its records are read (array_record raises a
    RuntimeError; TFDS's feature decoding other types). Every split is read in full before
    step 1 (:mod:`mtl_jax.data.columns`), so the error names the file and the fix before
    anything is trained or written. A shard listed in ``dataset_info.json`` but absent is
    refused when the source is made.
    """

    def __init__(self, source: Sequence[Any], builder: common.PackageDataBuilder, split: str):
        self.source = source
        self.dataset = builder.name
        self.split = split
        self.files = tuple(str(path) for path in builder.info.splits[split].filepaths)
        self.directory = Path(builder.data_dir).parent  # <data_dir>/<dataset>/<config>: files and vocabulary
        missing = [file for file in self.files if not Path(file).is_file()]
        if missing:
            raise corrupt_split(self.dataset, split, missing[0], self.directory, "is missing")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.dataset} {self.split}: index {index} of {len(self)} examples")
        return self._read(lambda: self.source[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        return self._read(lambda: list(self.source.__getitems__(list(indices))))

    def _read(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except Exception as error:  # noqa: BLE001 - corrupt records surface as many types
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:240]
            problem = f"is corrupt or truncated ({reason})"
            raise corrupt_split(self.dataset, self.split, failing_file(self.files, error), self.directory, problem) from error


def failing_file(files: Sequence[str], error: BaseException) -> str:
    """The shard an error names, else the only shard, else all of them."""
    named = [file for file in files if file in str(error)]
    if named or len(files) == 1:
        return (named or files)[0]
    return f"one of {', '.join(files)}"


def read_all(source: Sequence[Any]) -> list[Any]:
    """Every example of a source (one batched read)."""
    return list(source.__getitems__(list(range(len(source))))) if hasattr(source, "__getitems__") else list(source)


# --------------------------------------------------------------------------- images, graphs, tables


def open_overlay(module: Any, builder_cls: type, class_names: Sequence[str], data_dir: Any, **config: Any) -> OpenDataset:
    builder = prepare(builder_cls, data_dir, **config)
    tasks = tuple(TaskSpec(side, "classification", 10, class_names=tuple(class_names)) for side in ("left", "right"))
    spec = DatasetSpec(builder.name, InputSpec("image", "image", (28, 28)), tasks)
    return OpenDataset(spec, sources(builder, data_dir, **config), ImageCollate(("left", "right")))


def open_multi_mnist(data_dir: Any = None, **config: Any) -> OpenDataset:
    return open_overlay(multi_mnist, multi_mnist.MultiMnist, [str(i) for i in range(10)], data_dir, **config)


def open_multi_fashion(data_dir: Any = None, **config: Any) -> OpenDataset:
    return open_overlay(multi_fashion, multi_fashion.MultiFashion, multi_fashion.CLASS_NAMES, data_dir, **config)


def open_qm9(data_dir: Any = None, **config: Any) -> OpenDataset:
    builder = prepare(qm9.Qm9, data_dir, **config)
    meta = builder.info.metadata
    tasks = tuple(
        TaskSpec(name, "regression", 1, target_mean=float(mean), target_std=float(std), units=unit)
        for name, mean, std, unit in zip(qm9.TARGETS, meta["target_mean"], meta["target_std"], qm9.UNITS)
    )
    spec = DatasetSpec("qm9", InputSpec("graph", "atomic_numbers", (), vocab_size=10), tasks)
    return OpenDataset(spec, sources(builder, data_dir, **config), GraphCollate(qm9.TARGETS, MAX_ATOMS))


def open_yeast(data_dir: Any = None, **config: Any) -> OpenDataset:
    builder = prepare(yeast.Yeast, data_dir, **config)
    names = tuple(f"class_{k + 1}" for k in range(yeast.NUM_LABELS))
    task = TaskSpec("functions", "multilabel", yeast.NUM_LABELS, class_names=names)
    spec = DatasetSpec("yeast", InputSpec("features", "features", (yeast.NUM_FEATURES,)), (task,))
    return OpenDataset(spec, sources(builder, data_dir, **config), FeaturesCollate("functions"))


# --------------------------------------------------------------------------- text


@dataclasses.dataclass(frozen=True)
class TextLayout:
    """What a text builder stores: tagging keys (with builder-wide tag names or a fixed
    tag set) and sentence-level binary classification keys."""

    builder_cls: type
    tag_names: Callable[[common.PackageDataBuilder], Mapping[str, Sequence[str]]]
    fixed_tags: frozenset[str]
    labels: tuple[str, ...]


TEXT_LAYOUTS = {
    "dante_tweets": TextLayout(
        dante_tweets.DanteTweets, lambda b: {"upos": dante_tweets.UPOS}, frozenset({"upos"}), dante_tweets.EMOTIONS
    ),
    "turkish_ud": TextLayout(
        turkish_ud.TurkishUd,
        lambda b: {task: b.info.metadata[f"{task}_names"] for task in turkish_ud.TASKS},
        frozenset(),
        (),
    ),
}


def text_content(
    layout: TextLayout, builder: common.PackageDataBuilder, splits: Mapping[str, Sequence[Any]], min_count: int, lowercase: bool
) -> dict[str, Any]:
    """Vocabulary and tag sets from the train split, and every split's lengths."""
    examples = {split: read_all(source) for split, source in splits.items()}
    train = examples["train"]
    sentences = [[text.as_text(t).lower() if lowercase else text.as_text(t) for t in e["tokens"]] for e in train]
    names = layout.tag_names(builder)
    tags = {
        key: list(names[key]) if key in layout.fixed_tags else text.build_tag_set([e[key] for e in train], names[key])
        for key in names
    }
    lengths = {split: [len(e["tokens"]) for e in values] for split, values in examples.items()}
    return {"tokens": text.build_vocabulary(sentences, min_count), "tags": tags, "lengths": lengths}


def text_content_problem(
    content: Mapping[str, Any], layout: TextLayout, names: Mapping[str, Sequence[str]], sizes: Mapping[str, int]
) -> str | None:
    """What is wrong with a loaded vocabulary file's content for these splits, or None."""
    tokens = content["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or len(set(tokens)) != len(tokens):
        return "'tokens' is not a list of distinct strings"
    tags = content["tags"]
    for key in names:
        found = tags.get(key) if isinstance(tags, dict) else None
        allowed = list(names[key]) if key in layout.fixed_tags else None
        if allowed is not None and found != allowed:
            return f"the tag set of {key!r} is not this dataset's {len(allowed)} tags"
        if allowed is None and not (
            isinstance(found, list) and found[-1:] == [text.UNSEEN] and len(set(found)) == len(found)
            and set(found[:-1]) <= set(names[key])
        ):  # fmt: skip
            return f"the tag set of {key!r} is not distinct tags of the dataset followed by {text.UNSEEN!r}"
    lengths = content["lengths"]
    for split, size in sizes.items():
        found = lengths.get(split) if isinstance(lengths, dict) else None
        if not isinstance(found, list) or len(found) != size:
            count = len(found) if isinstance(found, list) else None
            return f"it has {count} sequence lengths for the {size} examples of split {split!r}"
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in found):
            return f"the sequence lengths of split {split!r} are not all positive integers"
    return None


def check_text_content(
    dataset: str, path: Path, content: Mapping[str, Any], layout: TextLayout, names: Mapping[str, Sequence[str]],
    sizes: Mapping[str, int],
) -> None:  # fmt: skip
    """DataError naming ``path`` when its content does not fit the prepared splits (a file
    written for other data, or edited); that the lengths match the examples themselves is
    checked when each split is collated (:meth:`~mtl_jax.data.opened.OpenDataset.columns`)."""
    problem = text_content_problem(content, layout, names, sizes)
    if problem is not None:
        raise DataError(
            f"{dataset}: vocabulary file {path} does not fit the prepared data: {problem}; fix: delete {path}"
            " (it is rebuilt from the train split) and run the same command again"
        )


def open_text(name: str, data_dir: Any = None, min_count: int = 1, lowercase: bool = False, **config: Any) -> OpenDataset:
    layout = TEXT_LAYOUTS[name]
    builder = prepare(layout.builder_cls, data_dir, **config)
    splits = sources(builder, data_dir, **config)
    source = {"builder": common.format_tag(builder), "config": builder.builder_config.name,
              "min_count": min_count, "lowercase": lowercase}  # fmt: skip
    path = text.text_file(builder.data_dir, str(builder.version))
    content = text.load_text_file(path, name, source)
    if content is None:
        content = text_content(layout, builder, splits, min_count, lowercase)
        text.save_text_file(path, {"source": source, **content})
    names = layout.tag_names(builder)
    check_text_content(name, path, content, layout, names, {split: len(values) for split, values in splits.items()})
    id_maps = {
        key: None if key in layout.fixed_tags else text.tag_id_map(names[key], content["tags"][key]) for key in names
    }
    lengths = {split: np.asarray(content["lengths"][split], np.int32) for split in splits}
    buckets = bucketing.default_buckets(int(max(values.max() for values in lengths.values())))
    vocabulary = tuple(content["tokens"])
    collate = TextCollate(text.TokenEncoder(vocabulary, lowercase), id_maps, layout.labels, buckets)
    tasks = tuple(TaskSpec(key, "tagging", len(content["tags"][key]), class_names=tuple(content["tags"][key])) for key in names)
    tasks += tuple(TaskSpec(key, "classification", 2, class_names=("absent", "present")) for key in layout.labels)
    spec = DatasetSpec(name, InputSpec("text", "tokens", (), vocab_size=len(vocabulary)), tasks)
    return OpenDataset(spec, splits, collate, lengths, buckets, vocabulary, str(path))


# --------------------------------------------------------------------------- registry

BUILDERS: dict[str, type] = {
    "dante_tweets": dante_tweets.DanteTweets,
    "turkish_ud": turkish_ud.TurkishUd,
    "multi_mnist": multi_mnist.MultiMnist,
    "multi_fashion": multi_fashion.MultiFashion,
    "qm9": qm9.Qm9,
    "yeast": yeast.Yeast,
}


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    description: str
    open: Callable[..., OpenDataset]


DATASETS: dict[str, DatasetEntry] = {
    "dante_tweets": DatasetEntry(
        "DANTEStocks Portuguese finance tweets: UPOS tagging + 8 emotion classifications",
        lambda data_dir=None, **o: open_text("dante_tweets", data_dir, **o),
    ),
    "turkish_ud": DatasetEntry(
        "Turkish Web Treebank: coarse POS, fine POS, morphology, dependency relation tagging",
        lambda data_dir=None, **o: open_text("turkish_ud", data_dir, **o),
    ),
    "multi_mnist": DatasetEntry("MultiMNIST: two overlaid digits, left and right class", open_multi_mnist),
    "multi_fashion": DatasetEntry("MultiFashion: two overlaid Fashion-MNIST items, left and right class", open_multi_fashion),
    "qm9": DatasetEntry("QM9 molecules: 11 quantum-chemical regression targets", open_qm9),
    "yeast": DatasetEntry("Yeast genes: 14 functional classes as one multilabel task", open_yeast),
}


def open_dataset(name: str, data_dir: str | Path | None = None, **options: Any) -> OpenDataset:
    """Prepare (once) and open a dataset by name; see the module docstring for its tasks."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; fix: use one of {sorted(DATASETS)}")
    accepted = set(accepted_options(name))
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise DataError(f"{name}: unknown options {unknown}; fix: use only {sorted(accepted)}")
    return DATASETS[name].open(data_dir, **options)


def accepted_options(name: str) -> list[str]:
    """The options ``open_dataset(name, ...)`` accepts: builder config fields, text options."""
    return sorted(set(config_fields(BUILDERS[name])) | (set(TEXT_OPTIONS) if name in TEXT_LAYOUTS else set()))


def config_fields(builder_cls: type) -> list[str]:
    """The config fields a builder accepts (``seed``, ``limit``, ...)."""
    inherited = {f.name for f in dataclasses.fields(common.tfds.core.BuilderConfig)}
    return [f.name for f in dataclasses.fields(builder_cls.BUILDER_CONFIGS[0]) if f.name not in inherited]

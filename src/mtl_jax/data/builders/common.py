"""Shared pieces of the TFDS builders: data directory, configs, source checks, splits, loading.

Every builder here is a ``tfds.core.GeneratorBasedBuilder`` whose examples come from data
that ships inside an installed package (PyPI or Debian); nothing is downloaded. Builders
write ``array_record`` files and are read with ``builder.as_data_source(split)``, which needs
no TensorFlow.

Data directory: prepared datasets live under, in order of precedence, the ``data_dir``
argument, the environment variable ``MTL_JAX_DATA_DIR``, or
``~/.cache/mtl_jax/tensorflow_datasets``; the layout inside is TFDS's
``<dataset>/<config>/<version>/``. Preparation runs once per (dataset, config, version);
later calls reuse the files. Nothing already prepared is ever deleted by this code: a
directory that cannot be read, or that was written by another format revision, raises
:class:`~mtl_jax.data.errors.DataError` naming it, and the fix is to remove it by hand or to
prepare into another ``data_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.errors import DataError

DATA_DIR_ENV = "MTL_JAX_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/mtl_jax/tensorflow_datasets")
FILE_FORMAT = "array_record"
FORMAT_KEY = "mtl_jax_format"

Example = dict[str, Any]


# --------------------------------------------------------------------------- data directory


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir`` if given, else ``$MTL_JAX_DATA_DIR``, else ``~/.cache/mtl_jax/tensorflow_datasets``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


# --------------------------------------------------------------------------- configs


@dataclasses.dataclass(eq=False)
class SeededConfig(tfds.core.BuilderConfig):
    """A builder config with a split seed and an optional cap on the source examples read.

    ``limit`` keeps only the first ``limit`` source examples (per source file where a dataset
    has several); it exists so that tests can prepare a small slice quickly.
    """

    seed: int = 0
    limit: int | None = None


ConfigT = TypeVar("ConfigT", bound=SeededConfig)


def config_name(config_cls: type[SeededConfig], **fields: Any) -> str:
    """``"default"`` for the default field values, else e.g. ``"seed3-limit100"``."""
    defaults = config_cls(name="default")
    parts = [
        f"{key.replace('_', '')}{value}"
        for key, value in sorted(fields.items())
        if getattr(defaults, key) != value
    ]
    return "-".join(parts) or "default"


def make_config(config_cls: type[ConfigT], **fields: Any) -> ConfigT:
    """A config of ``config_cls`` whose name encodes the non-default ``fields``."""
    return config_cls(name=config_name(config_cls, **fields), **fields)


# --------------------------------------------------------------------------- source files


def package_dir(dataset: str, module: str, install: str) -> Path:
    """Directory of the installed top-level ``module`` (located without importing it)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{dataset} needs the package '{module}', which is not installed; fix: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def require_file(dataset: str, path: Path, install: str) -> Path:
    """``path`` if it is a non-empty file, else a :class:`DataError` naming it and the fix."""
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"{dataset}: source file {path} is missing or empty; fix: {install}")
    return path


def source_error(dataset: str, path: Path | str, problem: str, install: str) -> DataError:
    """The :class:`DataError` for a corrupt source file."""
    return DataError(f"{dataset}: source file {path} is corrupt or truncated ({problem}); fix: {install}")


def check_count(dataset: str, path: Path | str, what: str, found: int, expected: int, install: str) -> None:
    """Raise unless a full source read found exactly the documented number of items."""
    if found != expected:
        raise source_error(dataset, path, f"found {found} {what}, the package documents {expected}", install)


def check_range(
    dataset: str, path: Path | str, what: str, values: np.ndarray, low: int, high: int, install: str
) -> None:
    """Raise unless every label in ``values`` lies in ``[low, high]``."""
    values = np.asarray(values)
    if values.size and (values.min() < low or values.max() > high):
        raise source_error(
            dataset, path, f"{what} out of range [{low}, {high}]: found [{values.min()}, {values.max()}]", install
        )


def take(items: Sequence[Any], limit: int | None) -> Sequence[Any]:
    """The first ``limit`` items (all of them when ``limit`` is None)."""
    return items if limit is None else items[:limit]


# --------------------------------------------------------------------------- CoNLL-U


@dataclasses.dataclass(frozen=True)
class ConlluSentence:
    """One CoNLL-U sentence: its ``sent_id``, ``text`` and the 10 columns of each word line."""

    sent_id: str
    text: str
    rows: tuple[tuple[str, ...], ...]


def _conllu_block(dataset: str, path: Path, block: str, install: str) -> ConlluSentence:
    comments: dict[str, str] = {}
    rows = []
    for line in block.split("\n"):
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            comments[key.strip()] = value.strip()
            continue
        columns = tuple(line.split("\t"))
        if len(columns) < 10:  # a few source lines carry a stray 11th column; it is ignored
            raise source_error(dataset, path, f"a word line has {len(columns)} columns, not 10: {line!r}", install)
        columns = columns[:10]
        if "-" in columns[0] or "." in columns[0]:
            continue  # multi-word token ranges and empty nodes carry no word annotation
        rows.append(columns)
    if "sent_id" not in comments or not rows:
        raise source_error(dataset, path, f"sentence without sent_id or words: {block[:80]!r}", install)
    return ConlluSentence(comments["sent_id"], comments.get("text", ""), tuple(rows))


def parse_conllu(dataset: str, path: Path, install: str) -> list[ConlluSentence]:
    """All sentences of a CoNLL-U file, in file order; malformed lines raise :class:`DataError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise source_error(dataset, path, str(error), install) from error
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return [_conllu_block(dataset, path, block, install) for block in blocks if block.strip()]


def vocabulary(sequences: Iterable[Iterable[str]]) -> list[str]:
    """Sorted distinct strings, so ids do not depend on the order of the source."""
    return sorted({item for sequence in sequences for item in sequence})


def encode(items: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """int32 ids of ``items`` in the vocabulary ``names``."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[item] for item in items], np.int32)


# --------------------------------------------------------------------------- splits


def seeded_split(
    dataset: str, num_examples: int, seed: int, num_test: int, num_validation: int
) -> dict[str, np.ndarray]:
    """Index arrays of a seeded permutation: the first ``num_test`` test, the next
    ``num_validation`` validation, the rest train. Each is sorted; an empty one raises."""
    order = np.random.default_rng(seed).permutation(num_examples)
    splits = {
        "train": order[num_test + num_validation :],
        "validation": order[num_test : num_test + num_validation],
        "test": order[:num_test],
    }
    for split, index in splits.items():
        require_nonempty(dataset, split, len(index))
    return {split: np.sort(index) for split, index in splits.items()}


def require_nonempty(dataset: str, split: str, size: int) -> None:
    """Raise when a split would be empty (e.g. ``limit`` too small or a truncated source)."""
    if size == 0:
        raise DataError(
            f"{dataset}: split '{split}' would be empty; fix: raise the config's limit or"
            " reinstall the package that ships the source data"
        )


# --------------------------------------------------------------------------- builders


class PackageDataBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders: uniform ``DatasetInfo``, in-memory splits, a format tag.

    Subclasses set ``VERSION``, ``FORMAT`` (bump when the stored features change),
    ``DESCRIPTION``, ``CITATION``, ``HOMEPAGE``, and implement ``_features()`` and
    ``_make_splits()`` (split name -> sequence of examples); they may add entries to
    ``self.info.metadata`` inside ``_make_splits``.
    """

    FORMAT = "1"
    DESCRIPTION = ""
    CITATION = ""
    HOMEPAGE = ""

    def _features(self) -> tfds.features.FeaturesDict:
        raise NotImplementedError

    def _make_splits(self) -> Mapping[str, Sequence[Example]]:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=self._features(),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, Example]]]:
        del dl_manager  # every source ships inside an installed package
        splits = self._make_splits()
        for split, examples in splits.items():
            require_nonempty(self.name, split, len(examples))
        self.info.metadata[FORMAT_KEY] = format_tag(self)
        return {split: self._generate_examples(examples) for split, examples in splits.items()}

    def _generate_examples(self, examples: Sequence[Example]) -> Iterator[tuple[int, Example]]:
        yield from enumerate(examples)


def format_tag(builder: PackageDataBuilder) -> str:
    """The tag a builder writes into its metadata and expects when reading."""
    return f"{builder.name}/{builder.VERSION}/format-{builder.FORMAT}"


def make_builder(
    builder_cls: type[PackageDataBuilder],
    data_dir: str | os.PathLike[str] | None = None,
    **config_fields: Any,
) -> PackageDataBuilder:
    """A builder for the config made of ``config_fields``, writing ``array_record`` files."""
    config: str | SeededConfig = make_config(builder_cls.BUILDER_CONFIGS[0].__class__, **config_fields)
    if config.name in {known.name for known in builder_cls.BUILDER_CONFIGS}:
        config = config.name  # TFDS refuses a new object named like a declared config
    directory = resolve_data_dir(data_dir)
    try:
        return builder_cls(data_dir=str(directory), config=config, file_format=FILE_FORMAT)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - TFDS raises many types for unreadable dirs
        raise unreadable(builder_cls.name, directory, error) from error


def unreadable(dataset: str, directory: Path, error: BaseException) -> DataError:
    """The :class:`DataError` for a prepared directory that cannot be read."""
    return DataError(
        f"{dataset}: the prepared data under {directory / dataset} cannot be read"
        f" ({type(error).__name__}: {error}); fix: remove that directory yourself, or pass"
        f" another data_dir / {DATA_DIR_ENV}, and prepare again"
    )


def check_format(builder: PackageDataBuilder) -> None:
    """Raise unless the prepared data was written by this format revision of the builder."""
    found = builder.info.metadata.get(FORMAT_KEY) if builder.info.metadata is not None else None
    if found != format_tag(builder):
        raise DataError(
            f"{builder.name}: the data under {builder.data_dir} was written by another version"
            f" (format {found!r}, this code reads {format_tag(builder)!r}); fix: remove that"
            f" directory yourself, or pass another data_dir / {DATA_DIR_ENV}, and prepare again"
        )


def prepare(
    builder_cls: type[PackageDataBuilder],
    data_dir: str | os.PathLike[str] | None = None,
    **config_fields: Any,
) -> PackageDataBuilder:
    """The builder, prepared once (reused afterwards) and checked to be this code's format.

    Processes that prepare the same dataset at once (sweep workers, the processes of a
    multi-host job on a shared disk) take turns through a lock on the data directory; the
    ones that waited find it prepared and only read it."""
    builder = make_builder(builder_cls, data_dir, **config_fields)
    if not builder.is_prepared():
        with preparation_lock(resolve_data_dir(data_dir), builder):
            builder = make_builder(builder_cls, data_dir, **config_fields)  # another may have prepared it
            if not builder.is_prepared():
                with quiet_tfds():
                    builder.download_and_prepare()
    check_format(builder)
    return builder


@contextlib.contextmanager
def preparation_lock(directory: Path, builder: PackageDataBuilder) -> Iterator[None]:
    """An exclusive ``flock`` on the data directory itself (no lock file is left behind)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = os.open(directory, os.O_RDONLY)
    except OSError as error:
        raise DataError(
            f"{builder.name}: cannot prepare the data under {directory} ({error.strerror}); fix: make it"
            f" writable, or pass another data_dir / {DATA_DIR_ENV}"
        ) from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


@contextlib.contextmanager
def quiet_tfds() -> Iterator[None]:
    """No TFDS progress bars or "downloaded and prepared" lines on the terminal: preparation
    takes seconds, and the trainer's stderr must stay one clear line per error."""
    logger = logging.getLogger("absl")
    level = logger.level
    tfds.disable_progress_bar()
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def load_split(
    builder_cls: type[PackageDataBuilder],
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    **config_fields: Any,
) -> Sequence[Example]:
    """A random-access data source of ``split``, preparing the dataset first if needed."""
    builder = prepare(builder_cls, data_dir, **config_fields)
    if split not in builder.info.splits:
        raise DataError(
            f"{builder.name}: no split '{split}' under {builder.data_dir}; fix: use one of"
            f" {sorted(builder.info.splits)}"
        )
    try:
        return builder.as_data_source(split)
    except Exception as error:  # noqa: BLE001 - corrupt files surface as various errors
        raise unreadable(builder.name, resolve_data_dir(data_dir), error) from error

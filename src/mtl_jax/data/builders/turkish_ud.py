"""Turkish Web Treebank (web + Wikipedia sections): four token-level tagging tasks.

Source: the PyPI package ``turkish-treebanks`` 1.0.0 (Google Research, Apache 2.0), which
installs the CoNLL-U files ``data/web.conllu`` (2,541 sentences) and ``data/wiki.conllu``
(2,310 sentences) next to its ``turkish_treebanks`` module: 4,851 sentences in all.

Paper: Kayadelen, Öztürel & Bohnet, "A Gold Standard Dependency Treebank for Turkish",
LREC 2020.

Tasks, one label per token (tokens are the treebank's inflectional-group segments):
``coarse_pos`` (CoNLL-U column 4), ``fine_pos`` (column 5), ``morph`` (column 6, the whole
feature bundle as one tag, as UDPipe's UFeats), ``deprel`` (column 8). ``head`` (column 7) is
kept as well. Each vocabulary is the sorted set of values over both files (all splits), saved
as ``<task>_names`` in the dataset metadata.

Split, exactly as ``turkish_treebanks.read._sentence_is_in_split`` documents it: within each
file, sentence ``i`` (0-based, file order) is dev when ``i % 10 == 8`` ("every 9th"), test when
``i % 10 == 9`` ("every 10th"), and train otherwise. The dev split is called ``validation``
here. Web + wiki give 3,881 train / 485 validation / 485 test sentences. The config's
``seed`` is unused (the split is fixed); ``limit`` keeps the first ``limit`` sentences of
each file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.builders import common
from mtl_jax.errors import DataError

DATASET = "turkish_ud"
INSTALL = "pip install --force-reinstall turkish-treebanks"
SECTIONS = {"web": 2541, "wiki": 2310}
TASKS = {"coarse_pos": 3, "fine_pos": 4, "morph": 5, "deprel": 7}
SPLIT_OF_REMAINDER = {8: "validation", 9: "test"}


def source_files() -> dict[str, Path]:
    """Section name -> CoNLL-U file installed by ``turkish-treebanks``."""
    root = common.package_dir(DATASET, "turkish_treebanks", INSTALL).parent / "data"
    return {name: common.require_file(DATASET, root / f"{name}.conllu", INSTALL) for name in SECTIONS}


def split_of(index: int) -> str:
    """The package's split of the ``index``-th sentence (0-based) of a treebank file."""
    return SPLIT_OF_REMAINDER.get(index % 10, "train")


def read_sections(
    files: Mapping[str, Path], limit: int | None = None
) -> dict[str, list[common.ConlluSentence]]:
    """Section -> sentences; a full read (``limit`` None) must find the documented counts."""
    sections = {}
    for name, path in files.items():
        sentences = common.parse_conllu(DATASET, path, INSTALL)
        common.check_count(DATASET, path, "sentences", len(sentences), SECTIONS[name], INSTALL)
        for sentence in sentences:
            check_heads(path, sentence)
        sections[name] = list(common.take(sentences, limit))
    return sections


def check_heads(path: Path, sentence: common.ConlluSentence) -> None:
    """Raise unless every head is an integer in [0, number of words]."""
    try:
        heads = np.array([int(row[6]) for row in sentence.rows])
    except ValueError as error:
        raise common.source_error(DATASET, path, f"non-integer head in {sentence.sent_id}", INSTALL) from error
    common.check_range(DATASET, path, f"heads of {sentence.sent_id}", heads, 0, len(sentence.rows), INSTALL)


def vocabularies(sections: Mapping[str, Sequence[common.ConlluSentence]]) -> dict[str, list[str]]:
    """Task -> sorted label names over all sentences."""
    sentences = [s for section in sections.values() for s in section]
    return {
        task: common.vocabulary([row[column] for row in s.rows] for s in sentences)
        for task, column in TASKS.items()
    }


def sentence_example(
    section: str, sentence: common.ConlluSentence, names: Mapping[str, Sequence[str]]
) -> common.Example:
    """One stored example: tokens, the four label sequences and heads."""
    example: common.Example = {
        "id": sentence.sent_id,
        "section": section,
        "text": sentence.text,
        "tokens": [row[1] for row in sentence.rows],
        "head": np.array([int(row[6]) for row in sentence.rows], np.int32),
    }
    for task, column in TASKS.items():
        example[task] = common.encode([row[column] for row in sentence.rows], names[task])
    return example


def split_examples(
    sections: Mapping[str, Sequence[common.ConlluSentence]], names: Mapping[str, Sequence[str]]
) -> dict[str, list[common.Example]]:
    """Split name -> examples, by each sentence's position in its own file."""
    splits: dict[str, list[common.Example]] = {"train": [], "validation": [], "test": []}
    for section, sentences in sections.items():
        for index, sentence in enumerate(sentences):
            splits[split_of(index)].append(sentence_example(section, sentence, names))
    return splits


@dataclasses.dataclass(eq=False)
class TurkishUdConfig(common.SeededConfig):
    """``limit`` caps the sentences read per file; ``seed`` is unused (fixed split)."""


class TurkishUd(common.PackageDataBuilder, skip_registration=True):
    """Turkish Web Treebank: coarse POS, fine POS, morphology and dependency relation per token."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "web + wiki sections of turkish-treebanks 1.0.0."}
    BUILDER_CONFIGS = [TurkishUdConfig(name="default")]
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/google-research-datasets/turkish-treebanks"
    CITATION = (
        "Kayadelen, T., Öztürel, A., Bohnet, B. A Gold Standard Dependency Treebank for"
        " Turkish. LREC 2020."
    )

    def _features(self) -> tfds.features.FeaturesDict:
        labels = {task: tfds.features.Tensor(shape=(None,), dtype=np.int32) for task in TASKS}
        return tfds.features.FeaturesDict(
            {
                "id": tfds.features.Text(),
                "section": tfds.features.ClassLabel(names=list(SECTIONS)),
                "text": tfds.features.Text(),
                "tokens": tfds.features.Sequence(tfds.features.Text()),
                "head": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                **labels,
            }
        )

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        sections = read_sections(source_files(), self.builder_config.limit)
        names = vocabularies(sections)
        for task, task_names in names.items():
            self.info.metadata[f"{task}_names"] = task_names
        return split_examples(sections, names)


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a Turkish treebank split (``train``, ``validation``, ``test``)."""
    return common.load_split(TurkishUd, split, data_dir, **config_fields)


__all__ = ["DataError", "TurkishUd", "TurkishUdConfig", "load", "read_sections", "source_files", "split_of"]

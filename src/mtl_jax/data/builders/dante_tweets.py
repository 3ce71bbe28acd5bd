"""DANTEStocks: 4,048 Portuguese finance tweets with UPOS tags and 8 emotion labels.

Source: the PyPI package ``dante-corpora`` (POeTiSA / DANTE project, MIT licence), which ships
``dante/data/dantestocks/POS.conllu`` (UPOS tags of 4,048 tweets, Universal Dependencies
style) and ``dante/data/dantestocks/emotion.csv`` (emotion annotation of 4,517 tweets). The
examples are the 4,048 tweets present in both files, so every example carries a token-level
task (UPOS) and eight sentence-level tasks (emotions) on the same text.

Papers: the emotion layer follows Plutchik's wheel (Vargas, Real & Ferreira, "Emotion
annotation of the DANTEStocks corpus", and the POeTiSA DANTE publications); UPOS tags follow
Universal Dependencies v2 (de Marneffe et al., Computational Linguistics 2021).

Emotion codes: ``emotion.csv`` has one column per emotion (TRU trust, DIS disgust, JOY joy,
SAD sadness, ANT anticipation, SUR surprise, ANG anger, FEA fear), each in {-2, -1, 0, 1}.
In the file, -1 and -2 always occur on both members of a pair of opposite emotions at once
(trust/disgust, joy/sadness, anticipation/surprise, anger/fear), and -2 comes with a pair
agreement of at most 1/3: they mark a pair for which the annotators reached no majority
label. This builder maps the codes to labels as

* ``1`` -> label 1 ("present"), mask True;
* ``0`` -> label 0 ("absent"), mask True;
* ``-1``, ``-2`` -> label 0 with mask False: no majority label, so the tweet does not count
  for that emotion's loss or metrics (the repository's ``<label>_mask`` convention).

The raw codes are kept in ``emotion_codes`` (int32, the 8 emotions in the order above).
The NEUTRAL column is not one of the 8 emotion tasks and is not stored.

Split (the package documents none): a permutation of the 4,048 tweets (in ``POS.conllu``
order) seeded with the config's ``seed`` (default 0); its first 10 % (404) is test, the next
10 % (404) validation, the remaining 3,240 train.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.builders import common
from mtl_jax.errors import DataError
from mtl_jax.types import mask_key

DATASET = "dante_tweets"
INSTALL = "pip install --no-deps --force-reinstall dante-corpora"
NUM_TWEETS = 4048
UPOS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
EMOTION_COLUMNS = ("TRU", "DIS", "JOY", "SAD", "ANT", "SUR", "ANG", "FEA")
EMOTIONS = ("trust", "disgust", "joy", "sadness", "anticipation", "surprise", "anger", "fear")
CODES = (-2, -1, 0, 1)


def source_files() -> dict[str, Path]:
    """``pos`` (CoNLL-U) and ``emotion`` (CSV) files of DANTEStocks inside ``dante-corpora``."""
    root = common.package_dir(DATASET, "dante", INSTALL) / "data" / "dantestocks"
    return {
        "pos": common.require_file(DATASET, root / "POS.conllu", INSTALL),
        "emotion": common.require_file(DATASET, root / "emotion.csv", INSTALL),
    }


def read_emotions(path: Path) -> dict[str, np.ndarray]:
    """Tweet id -> int32 codes of the 8 emotions, validated to lie in {-2, -1, 0, 1}."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise common.source_error(DATASET, path, str(error), INSTALL) from error
    missing = {"Tweet_ID", *EMOTION_COLUMNS} - set(rows[0] if rows else {})
    if missing:
        raise common.source_error(DATASET, path, f"missing columns {sorted(missing)}", INSTALL)
    try:
        codes = {row["Tweet_ID"]: np.array([int(row[c]) for c in EMOTION_COLUMNS], np.int32) for row in rows}
    except (TypeError, ValueError) as error:
        raise common.source_error(DATASET, path, f"non-integer emotion code ({error})", INSTALL) from error
    for values in codes.values():
        common.check_range(DATASET, path, "emotion codes", values, min(CODES), max(CODES), INSTALL)
    return codes


def emotion_labels(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 in {0, 1}, mask bool) of raw codes: 1 present, 0 absent, -1/-2 masked."""
    codes = np.asarray(codes)
    return (codes == 1).astype(np.int64), codes >= 0


def tweet_example(sentence: common.ConlluSentence, codes: np.ndarray) -> common.Example:
    """One stored example from a CoNLL-U sentence and its emotion codes."""
    labels, mask = emotion_labels(codes)
    example: common.Example = {
        "id": sentence.sent_id,
        "text": sentence.text,
        "tokens": [row[1] for row in sentence.rows],
        "upos": common.encode([row[3] for row in sentence.rows], UPOS),
        "emotion_codes": codes.astype(np.int32),
    }
    for i, name in enumerate(EMOTIONS):
        example[name] = labels[i]
        example[mask_key(name)] = bool(mask[i])
    return example


def read_tweets(files: Mapping[str, Path], limit: int | None = None) -> list[common.Example]:
    """The tweets annotated in both files, in ``POS.conllu`` order (all 4,048 checked when
    ``limit`` is None; otherwise only the first ``limit`` are returned)."""
    sentences = common.parse_conllu(DATASET, files["pos"], INSTALL)
    codes = read_emotions(files["emotion"])
    tags = [row[3] for sentence in sentences for row in sentence.rows]
    unknown = sorted(set(tags) - set(UPOS))
    if unknown:
        raise common.source_error(DATASET, files["pos"], f"UPOS tags out of range: {unknown[:5]}", INSTALL)
    paired = [s for s in sentences if s.sent_id in codes]
    common.check_count(DATASET, files["pos"], "tweets with emotion labels", len(paired), NUM_TWEETS, INSTALL)
    return [tweet_example(s, codes[s.sent_id]) for s in common.take(paired, limit)]


@dataclasses.dataclass(eq=False)
class DanteTweetsConfig(common.SeededConfig):
    """Split seed and optional cap on the tweets read (see :class:`common.SeededConfig`)."""


class DanteTweets(common.PackageDataBuilder, skip_registration=True):
    """DANTEStocks tweets: UPOS per token and 8 masked binary emotion labels per tweet."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "DANTEStocks from dante-corpora 2.0.5."}
    BUILDER_CONFIGS = [DanteTweetsConfig(name="default")]
    DESCRIPTION = __doc__
    HOMEPAGE = "https://pypi.org/project/dante-corpora/"
    CITATION = "DANTEStocks corpus, DANTE project (POeTiSA), dante-corpora on PyPI."

    def _features(self) -> tfds.features.FeaturesDict:
        features = {
            "id": tfds.features.Text(),
            "text": tfds.features.Text(),
            "tokens": tfds.features.Sequence(tfds.features.Text()),
            "upos": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "emotion_codes": tfds.features.Tensor(shape=(len(EMOTIONS),), dtype=np.int32),
        }
        for name in EMOTIONS:
            features[name] = tfds.features.ClassLabel(names=["absent", "present"])
            features[mask_key(name)] = tfds.features.Scalar(dtype=np.bool_)
        return tfds.features.FeaturesDict(features)

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        config = self.builder_config
        tweets = read_tweets(source_files(), config.limit)
        n_held = len(tweets) // 10
        index = common.seeded_split(DATASET, len(tweets), config.seed, n_held, n_held)
        self.info.metadata["upos_names"] = list(UPOS)
        self.info.metadata["emotions"] = list(EMOTIONS)
        return {split: [tweets[i] for i in rows] for split, rows in index.items()}


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a DANTEStocks split (``train``, ``validation``, ``test``)."""
    return common.load_split(DanteTweets, split, data_dir, **config_fields)


__all__ = ["DanteTweets", "DanteTweetsConfig", "DataError", "load", "read_tweets", "source_files"]

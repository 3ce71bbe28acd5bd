"""Text: a token vocabulary and tag sets from the train split, saved as JSON, and padding.

Vocabulary. Token ids: 0 = padding (``<pad>``), 1 = unknown (``<unk>``), then every token
seen at least ``min_count`` times in the *train* split, most frequent first (ties in
alphabetical order), so ids never depend on the validation or test text. Tokens are kept
as written (no lower-casing) unless ``lowercase``.

Tag sets. For a tagging task whose stored labels index a builder-wide list of names, the
tag set is the sorted names seen in the train split followed by ``<unseen>``: an evaluation
token whose tag never occurs in training gets that last class, which the model is never
taught, so it counts as an error instead of being silently dropped.

File. One JSON file per prepared dataset config, beside the TFDS files
(``<data_dir>/<dataset>/<config>/text-<version>.json``), holding the vocabulary, the tag
sets and the per-split sequence lengths (for bucketing). It is written once (atomically)
and reloaded afterwards; its ``format`` and ``source`` (the builder's format tag and the
options) are checked, and a mismatch or a corrupt file raises
:class:`~mtl_jax.data.errors.DataError` naming the file; it is never deleted by this code.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mtl_jax.errors import DataError

TEXT_FORMAT = "mtl_jax.text/1"
PAD, UNK, UNSEEN = "<pad>", "<unk>", "<unseen>"
PAD_ID, UNK_ID = 0, 1


def as_text(token: str | bytes) -> str:
    """A token as ``str`` (TFDS data sources return ``bytes``)."""
    return token.decode("utf-8") if isinstance(token, bytes) else str(token)


def build_vocabulary(sentences: Iterable[Sequence[str]], min_count: int = 1) -> list[str]:
    """``[<pad>, <unk>, tokens...]``: tokens seen ≥ ``min_count`` times, most frequent first."""
    counts = collections.Counter(token for sentence in sentences for token in sentence)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return [PAD, UNK, *(t for t in kept if t not in (PAD, UNK))]


def joint_vocabulary(vocabularies: Sequence[Sequence[str]]) -> list[str]:
    """``[<pad>, <unk>]`` then the tokens of each vocabulary in turn, each once."""
    joint = {PAD: None, UNK: None}
    for vocabulary in vocabularies:
        joint.update(dict.fromkeys(vocabulary))
    return list(joint)


def build_tag_set(tag_ids: Iterable[np.ndarray], names: Sequence[str]) -> list[str]:
    """Sorted names of the tags seen (``tag_ids`` index ``names``), then ``<unseen>``."""
    seen = {int(i) for ids in tag_ids for i in np.asarray(ids).ravel()}
    return sorted(names[i] for i in seen) + [UNSEEN]


def tag_id_map(names: Sequence[str], tag_set: Sequence[str]) -> np.ndarray:
    """int32 array mapping a builder tag id to its id in ``tag_set`` (``<unseen>`` if absent)."""
    index = {name: i for i, name in enumerate(tag_set)}
    return np.array([index.get(name, index[UNSEEN]) for name in names], np.int32)


class TokenEncoder:
    """Maps tokens to ids of a vocabulary (``<unk>`` for the others)."""

    def __init__(self, vocabulary: Sequence[str], lowercase: bool = False):
        self.vocabulary = tuple(vocabulary)
        self.lowercase = lowercase
        self.index = {token: i for i, token in enumerate(self.vocabulary)}

    def __call__(self, tokens: Sequence[str | bytes]) -> np.ndarray:
        normal = (as_text(t) for t in tokens)
        if self.lowercase:
            normal = (t.lower() for t in normal)
        return np.array([self.index.get(t, UNK_ID) for t in normal], np.int32)


def pad_rows(rows: Sequence[np.ndarray], length: int, dtype: Any = np.int32) -> tuple[np.ndarray, np.ndarray]:
    """(values (B, length), mask (B, length)): each row truncated or padded with zeros."""
    values = np.zeros((len(rows), length) + np.shape(rows[0])[1:], dtype)
    mask = np.zeros((len(rows), length), bool)
    for i, row in enumerate(rows):
        n = min(len(row), length)
        values[i, :n] = row[:n]
        mask[i, :n] = True
    return values, mask


# --------------------------------------------------------------------------- the JSON file


def text_file(builder_data_dir: str | os.PathLike[str], version: str) -> Path:
    """``<data_dir>/<dataset>/<config>/text-<version>.json`` for a builder's ``data_dir``."""
    return Path(builder_data_dir).parent / f"text-{version}.json"


def load_text_file(path: Path, dataset: str, source: Mapping[str, Any]) -> dict[str, Any] | None:
    """The saved vocabulary file, None if absent; DataError if corrupt or of another version."""
    if not path.exists():
        return None
    fix = f"fix: remove {path} yourself (it is rebuilt from the train split), or use another data_dir"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{dataset}: vocabulary file {path} is corrupt or truncated ({error}); {fix}") from error
    if not isinstance(saved, dict) or saved.get("format") != TEXT_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise DataError(f"{dataset}: vocabulary file {path} has format {found!r}, this code reads {TEXT_FORMAT!r}; {fix}")
    if saved.get("source") != dict(source):
        raise DataError(
            f"{dataset}: vocabulary file {path} was built for {saved.get('source')!r}, not {dict(source)!r}"
            f" (written by another version); {fix}"
        )
    for key in ("tokens", "tags", "lengths"):
        if key not in saved:
            raise DataError(f"{dataset}: vocabulary file {path} lacks {key!r} (truncated?); {fix}")
    if saved["tokens"][:2] != [PAD, UNK]:
        raise DataError(f"{dataset}: vocabulary file {path} does not start with {PAD}, {UNK}; {fix}")
    return saved


def save_text_file(path: Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps({"format": TEXT_FORMAT, **content}, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)

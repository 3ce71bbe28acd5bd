"""Raw inputs → the exported function's inputs, with the training pipeline's own code.

Text. Token ids come from :class:`mtl_jax.data.text.TokenEncoder` over the artifact's
vocabulary (the same class, lower-casing and ``<unk>`` rule as the training collate,
:class:`mtl_jax.data.collate.TextCollate`), padded by :func:`mtl_jax.data.text.pad_rows`
to the length bucket chosen by :func:`mtl_jax.data.bucketing.bucket_length` from the
training buckets. An input is either

* a list of strings: used as the tokens, as the training data's (CoNLL-U) tokens are —
  this reproduces training exactly;
* a string: split into tokens by :func:`split_words` (``WORD_TOKENIZER``): URLs,
  ``@mentions``, ``#hashtags`` and ``$tickers`` kept whole, words joined across inner
  ``. , ' / -`` (``15,44``, ``05/02/14``, ``sexta-feira``), every other non-space character
  a token of its own. The training corpora are pre-tokenised, and their treebank
  tokenisation also splits contractions (Portuguese ``do`` → ``de o``), which this splitter
  does not; a contraction then maps to ``<unk>`` when the vocabulary lacks it.

An input with no token, or with more tokens than the longest training bucket
(``max_tokens``), is refused (DataError naming its index).

Images and tables: one array of the artifact's per-example shape (``image`` (28, 28),
``features`` (103,)), as a bare (nested) list or under the input key. Graphs (QM9):
``{"atomic_numbers": [...], "positions": [[x, y, z], ...]}`` (Å), at most 29 atoms, padded
with :func:`mtl_jax.data.text.pad_rows` as :class:`mtl_jax.data.collate.GraphCollate` does.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

import numpy as np

from mtl_jax.data import bucketing, text
from mtl_jax.errors import DataError
from mtl_jax.types import mask_key

WORD_TOKENIZER = "mtl_jax.words/1"
WORD_PATTERN = re.compile(r"https?://\S+|www\.\S+|[$#@]?\w+(?:[.,'’/-]\w+)*|[^\w\s]", re.UNICODE)


def split_words(raw: str) -> list[str]:
    """Tokens of a raw string (``WORD_TOKENIZER``; see the module docstring)."""
    return WORD_PATTERN.findall(raw)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One checked input: its arrays (without the batch axis) and, for text, its tokens."""

    index: int
    arrays: Mapping[str, np.ndarray]
    tokens: tuple[str, ...] = ()

    @property
    def length(self) -> int:
        return len(self.tokens)


class TextPreprocessor:
    """Strings or token lists → ``tokens``/``tokens_mask`` batches (module docstring)."""

    def __init__(self, metadata: Mapping[str, Any], max_chars: int = 10_000):
        pre = metadata["preprocessing"]
        self.key = next(iter(metadata["input"]["keys"]))
        self.encoder = text.TokenEncoder(pre["vocabulary"], pre["lowercase"])
        self.buckets = tuple(int(b) for b in pre["buckets"])
        self.max_tokens = int(pre["max_tokens"])
        self.max_chars = max_chars

    def tokens_of(self, example: Any, index: int) -> list[str]:
        if isinstance(example, str):
            if len(example) > self.max_chars:
                raise DataError(f"input {index}: {len(example)} characters, more than the {self.max_chars} accepted; fix: split the text")
            return split_words(example)
        if isinstance(example, (list, tuple)) and all(isinstance(t, str) for t in example):
            return list(example)
        raise DataError(f"input {index}: expected a string or a list of token strings, got {type(example).__name__}")

    def prepare(self, example: Any, index: int) -> Prepared:
        tokens = self.tokens_of(example, index)
        if not tokens:
            raise DataError(f"input {index}: no tokens (empty text); fix: remove it or give some text")
        if len(tokens) > self.max_tokens:
            raise DataError(
                f"input {index}: {len(tokens)} tokens, more than the {self.max_tokens} this model was trained on;"
                " fix: split the text into shorter pieces"
            )
        return Prepared(index, {self.key: self.encoder(tokens)}, tuple(tokens))

    def bucket(self, prepared: Prepared) -> int:
        return bucketing.bucket_length(prepared.length, self.buckets)

    def collate(self, items: Sequence[Prepared], length: int) -> dict[str, np.ndarray]:
        ids, mask = text.pad_rows([item.arrays[self.key] for item in items], length)
        return {self.key: ids, mask_key(self.key): mask}


class ArrayPreprocessor:
    """Images and feature rows: one float32 array of the artifact's per-example shape."""

    def __init__(self, metadata: Mapping[str, Any]):
        (self.key, entry), = metadata["input"]["keys"].items()
        self.shape = tuple(entry["shape"][1:])

    def prepare(self, example: Any, index: int) -> Prepared:
        if isinstance(example, Mapping):
            if self.key not in example:
                raise DataError(f"input {index}: no {self.key!r} field; fix: give {{{self.key!r}: array of shape {list(self.shape)}}}")
            example = example[self.key]
        try:
            array = np.asarray(example, np.float32)
        except (TypeError, ValueError) as error:
            raise DataError(f"input {index}: not a numeric array ({error}); expected shape {list(self.shape)}") from error
        if array.shape != self.shape:
            raise DataError(f"input {index}: array of shape {list(array.shape)}, the model takes {list(self.shape)}")
        if not np.isfinite(array).all():
            raise DataError(f"input {index}: the array holds NaN or infinite values")
        return Prepared(index, {self.key: array})

    def bucket(self, prepared: Prepared) -> int:
        return 0

    def collate(self, items: Sequence[Prepared], length: int) -> dict[str, np.ndarray]:
        del length
        return {self.key: np.stack([item.arrays[self.key] for item in items])}


class GraphPreprocessor:
    """Molecules: atomic numbers and positions, padded to the artifact's atom count."""

    def __init__(self, metadata: Mapping[str, Any]):
        pre = metadata["preprocessing"]
        self.max_atoms, self.num_types = int(pre["max_atoms"]), int(pre["num_atom_types"])

    def prepare(self, example: Any, index: int) -> Prepared:
        if not isinstance(example, Mapping) or not {"atomic_numbers", "positions"} <= set(example):
            raise DataError(f"input {index}: expected {{\"atomic_numbers\": [...], \"positions\": [[x, y, z], ...]}}")
        try:
            atoms = np.asarray(example["atomic_numbers"])
            positions = np.asarray(example["positions"], np.float32)
        except (TypeError, ValueError) as error:
            raise DataError(f"input {index}: atomic_numbers/positions are not numeric arrays ({error})") from error
        if atoms.ndim != 1 or (atoms.size and atoms.dtype.kind not in "iu"):
            raise DataError(f"input {index}: atomic_numbers must be a list of integers")
        atoms = atoms.astype(np.int32)
        if not 1 <= len(atoms) <= self.max_atoms:
            raise DataError(f"input {index}: {len(atoms)} atoms; the model takes 1 to {self.max_atoms}")
        if positions.shape != (len(atoms), 3) or not np.isfinite(positions).all():
            raise DataError(f"input {index}: positions must be {len(atoms)} finite [x, y, z] rows, got shape {list(positions.shape)}")
        if atoms.min() < 1 or atoms.max() >= self.num_types:
            raise DataError(f"input {index}: atomic numbers must lie in 1..{self.num_types - 1}")
        return Prepared(index, {"atomic_numbers": atoms, "positions": positions})

    def bucket(self, prepared: Prepared) -> int:
        return 0

    def collate(self, items: Sequence[Prepared], length: int) -> dict[str, np.ndarray]:
        del length
        atoms, mask = text.pad_rows([item.arrays["atomic_numbers"] for item in items], self.max_atoms)
        positions, _ = text.pad_rows([item.arrays["positions"] for item in items], self.max_atoms, np.float32)
        return {"atomic_numbers": atoms, "positions": positions, "atoms_mask": mask}


def preprocessor_for(metadata: Mapping[str, Any], max_chars: int = 10_000):
    """The preprocessor of an artifact's input kind."""
    kind = metadata["input"]["kind"]
    if kind == "text":
        return TextPreprocessor(metadata, max_chars)
    if kind == "graph":
        return GraphPreprocessor(metadata)
    return ArrayPreprocessor(metadata)

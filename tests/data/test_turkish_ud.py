"""Turkish treebank builder: documented counts and split rule, a small slice, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtl_jax.data.builders import turkish_ud
from mtl_jax.errors import DataError

LIMIT = 40  # sentences per file


@pytest.fixture(scope="module")
def sections() -> dict:
    return turkish_ud.read_sections(turkish_ud.source_files())


def test_full_source_counts_and_package_split(sections: dict) -> None:
    assert {name: len(s) for name, s in sections.items()} == {"web": 2541, "wiki": 2310}
    counts = {"train": 0, "validation": 0, "test": 0}
    for section in sections.values():
        for index in range(len(section)):
            counts[turkish_ud.split_of(index)] += 1
    assert counts == {"train": 3881, "validation": 485, "test": 485}


def test_split_rule_matches_the_package_docs() -> None:
    assert [turkish_ud.split_of(i) for i in range(10)] == ["train"] * 8 + ["validation", "test"]
    assert turkish_ud.split_of(18) == "validation" and turkish_ud.split_of(29) == "test"


def test_slice_fields_and_sizes(tmp_path: Path) -> None:
    sizes = {s: len(turkish_ud.load(s, tmp_path, limit=LIMIT)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 64, "validation": 8, "test": 8}
    builder = turkish_ud.common.prepare(turkish_ud.TurkishUd, tmp_path, limit=LIMIT)
    for example in turkish_ud.load("train", tmp_path, limit=LIMIT):
        n = len(example["tokens"])
        assert n > 0 and example["head"].shape == (n,)
        assert 0 <= example["head"].min() and example["head"].max() <= n
        for task in turkish_ud.TASKS:
            assert example[task].shape == (n,)
            assert 0 <= example[task].min() and example[task].max() < len(builder.info.metadata[f"{task}_names"])


def test_truncated_file_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = turkish_ud.source_files()
    text = files["web"].read_text(encoding="utf-8")
    cut = text.rindex("\n\n", 0, len(text) // 3)
    truncated = tmp_path / "web.conllu"
    truncated.write_text(text[:cut], encoding="utf-8")
    monkeypatch.setattr(turkish_ud, "source_files", lambda: {**files, "web": truncated})
    with pytest.raises(DataError, match=r"turkish_ud.*web\.conllu.*the package documents 2541.*pip install"):
        turkish_ud.load("train", tmp_path)


def test_head_out_of_range_raises(tmp_path: Path) -> None:
    files = turkish_ud.source_files()
    lines = files["wiki"].read_text(encoding="utf-8").split("\n")
    columns = lines[2].split("\t")
    columns[6] = "999"
    lines[2] = "\t".join(columns)
    bad = tmp_path / "wiki.conllu"
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match="heads .* out of range"):
        turkish_ud.read_sections({"wiki": bad})

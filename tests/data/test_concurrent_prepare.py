"""Processes that prepare the same dataset at once (sweep workers, the processes of a
multi-host job) take turns: every one gets the whole dataset and it is written once."""

from __future__ import annotations

import threading
from pathlib import Path

from mtl_jax.data.datasets import open_dataset


def test_simultaneous_preparations_take_turns_and_agree(tmp_path: Path) -> None:
    opened, errors = [], []

    def prepare() -> None:
        try:
            opened.append(open_dataset("multi_mnist", data_dir=tmp_path, num_train=40, num_test=8))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert len(opened) == 2
    sizes = {tuple(len(source) for source in o.splits.values()) for o in opened}
    assert len(sizes) == 1 and sum(next(iter(sizes))) == 48
    assert not list(tmp_path.rglob("*incomplete*")), "a preparation was left half-written"

"""Orbax checkpoints of the whole train state plus the data iterator's position.

Layout: ``<run dir>/checkpoints/<step>/{state,extra}``. ``state`` holds every array leaf of
the :class:`~mtl_jax.surgery.state.TrainState` (parameters, optimiser and aggregator state,
step, PRNG key data) under a flat dotted path name; ``extra`` is JSON (the data iterator's
state, best-so-far, counters). Leaves are stored by name and put back into the structure of
a freshly built state, so integer dict keys (``nnx.List`` layers), optax named tuples and
typed PRNG keys survive the round trip exactly.

Saves are asynchronous (host copies are taken first, so the donated device buffers may be
reused at once); the manager keeps the last ``keep`` checkpoints plus the best one by the
validation score passed to :meth:`Checkpointer.save` (larger is better).
"""

from __future__ import annotations

import logging
import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policies

from mtl_jax.surgery.state import TrainState
from mtl_jax.types import path_name

SCORE = "score"

logging.getLogger("absl").setLevel(logging.ERROR)


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def flatten_state(state: TrainState) -> dict[str, np.ndarray]:
    """{dotted path: host array} of every leaf; PRNG keys as their raw key data."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        leaf = jax.random.key_data(leaf) if _is_key(leaf) else leaf
        flat[path_name(path)] = np.array(jax.device_get(leaf))
    return flat


AGGREGATOR_STATE = "aggregator_state"


def _with_named_aggregator_state(flat: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Checkpoints written before aggregator states were named tuples kept a one-array state
    (GradVac, CR-MOGM, MoDo, UW, IMTL-L) as ``aggregator_state`` itself; today's state names
    its single field (``aggregator_state.targets``). Read the old name as the new one."""
    fields = [name for name in names if name.startswith(AGGREGATOR_STATE + ".")]
    if AGGREGATOR_STATE in flat and len(fields) == 1 and fields[0] not in flat:
        flat = {**flat, fields[0]: flat[AGGREGATOR_STATE]}
        del flat[AGGREGATOR_STATE]
    return flat


def unflatten_state(flat: dict[str, np.ndarray], like: TrainState) -> TrainState:
    """Put ``flat`` leaves back into the structure (and key types) of ``like``."""
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [path_name(path) for path, _ in leaves_with_paths]
    flat = _with_named_aggregator_state(flat, names)
    missing = sorted(set(names) - set(flat))
    if missing:
        raise ValueError(f"the checkpoint lacks {len(missing)} arrays of this model, e.g. {missing[:3]}")
    leaves = []
    for name, (_, template) in zip(names, leaves_with_paths):
        value = flat[name]
        if _is_key(template):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(template))
        elif np.shape(value) != np.shape(template):
            raise ValueError(f"checkpoint array {name!r} has shape {np.shape(value)}, the model expects {np.shape(template)}")
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


CHECKSUMS = "checksums"


def checksums(flat: dict[str, np.ndarray]) -> dict[str, str]:
    """{name: CRC-32 of the array's bytes, dtype and shape} of every array."""
    out = {}
    for name, array in flat.items():
        array = np.ascontiguousarray(array)
        header = f"{array.dtype.str}{array.shape}".encode()
        out[name] = f"{zlib.crc32(array.view(np.uint8).reshape(-1), zlib.crc32(header)):08x}"
    return out


class ChecksumError(ValueError):
    """A restored array differs from the one saved (the file was damaged)."""


def verified(step: int, flat: dict[str, np.ndarray], extra: dict) -> tuple[dict[str, np.ndarray], dict]:
    """``flat`` and ``extra`` without its checksums, after checking them (checkpoints of older
    versions have none)."""
    saved = extra.pop(CHECKSUMS, None)
    if saved is not None:
        found = checksums({name: flat[name] for name in saved if name in flat})
        bad = sorted(name for name in saved if found.get(name) != saved[name])
        if bad:
            raise ChecksumError(f"checkpoint of step {step}: {len(bad)} arrays fail their checksum, e.g. {bad[0]!r}")
    return flat, extra


class CorruptCheckpointWarning(UserWarning):
    """The latest checkpoint could not be read; an earlier one was restored."""


def saved_steps(directory: str | os.PathLike) -> list[int]:
    """The steps with a checkpoint directory under ``directory`` (read-only; [] if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def set_aside(directory: str | os.PathLike, steps: list[int]) -> list[Path]:
    """Rename the (unreadable) checkpoints of ``steps`` to ``unreadable-<step>[-n]`` so that
    training can save those steps again; nothing is deleted. Returns the new paths."""
    moved = []
    for step in steps:
        source = Path(directory) / str(step)
        target, n = Path(directory) / f"unreadable-{step}", 1
        while target.exists():
            target, n = Path(directory) / f"unreadable-{step}-{n}", n + 1
        source.rename(target)
        moved.append(target)
        warnings.warn(
            f"the unreadable checkpoint of step {step} was moved to {target}; training continues from an"
            " earlier one and saves that step again",
            CorruptCheckpointWarning,
            stacklevel=2,
        )
    return moved


class Checkpointer:
    """Save and restore (train state, JSON extra) in ``directory``."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, asynchronous: bool = True, read_only: bool = False):
        """``read_only``: restore only; the directory must exist and is never written."""
        self.directory = Path(directory).absolute()
        policy = policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=lambda metrics: metrics[SCORE], reverse=False, n=1,
                           keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            enable_async_checkpointing=asynchronous,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "extra"))
        self.failures: list[tuple[int, str]] = []  # (step, why) restore_latest skipped

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: TrainState, extra: dict, score: float | None = None) -> None:
        """Start an asynchronous save of ``state`` and ``extra`` at ``step`` (any earlier save
        is finished first). ``score``: the validation score, larger is better. A checksum of
        every array is saved with them and verified on restore."""
        flat = flatten_state(state)
        extra = {**extra, CHECKSUMS: checksums(flat)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(flat), extra=ocp.args.JsonSave(extra))
        metrics = None if score is None else {SCORE: float(score)}
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def restore(self, step: int, like: TrainState) -> tuple[TrainState, dict]:
        """The state and extra saved at ``step``, in the structure of ``like``."""
        target = {name: np.zeros(leaf.shape, leaf.dtype) for name, leaf in flatten_state(like).items()}
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), extra=ocp.args.JsonRestore())
        )
        flat, extra = verified(step, dict(restored["state"]), dict(restored["extra"]))
        return unflatten_state(flat, like), extra

    def restore_arrays(self, step: int) -> tuple[dict[str, np.ndarray], dict]:
        """The saved {dotted path: array} and extra at ``step``, without a model at hand."""
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), extra=ocp.args.JsonRestore())
        )
        flat = {name: np.asarray(value) for name, value in restored["state"].items()}
        return verified(step, flat, dict(restored["extra"]))

    def restore_extra(self, step: int) -> dict:
        """Only the JSON extra saved at ``step`` (cheap: no arrays are read)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(extra=ocp.args.JsonRestore()))
        extra = dict(restored["extra"])
        extra.pop(CHECKSUMS, None)
        return extra

    def restore_latest(self, like: TrainState) -> tuple[int, TrainState, dict] | None:
        """The newest readable checkpoint, or None when none is (``failures`` then says why).
        Newer unreadable ones are skipped with one warning."""
        self.failures = []
        for step in reversed(self.steps()):
            try:
                state, extra = self.restore(step, like)
            except Exception as error:  # any unreadable file means: try the previous one
                text = " ".join(str(error).split())[:200]
                self.failures.append((step, f"{type(error).__name__}: {text}"))
                continue
            if self.failures:
                newest, reason = self.failures[0]
                more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
                warnings.warn(
                    f"checkpoint at step {newest} in {self.directory} is unreadable ({reason}){more};"
                    f" restored step {step} instead",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
            return step, state, extra
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

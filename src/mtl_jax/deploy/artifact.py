"""The exported model: a serialised ``jax.export`` function, its parameters, its metadata.

Directory layout (``FORMAT``)::

    <dir>/metadata.json    format, versions, dataset, tasks, preprocessing, source, metrics
    <dir>/inference.jax    jax.export.Exported.serialize() of infer(params, inputs)
    <dir>/params.npz       the parameters, one array per dotted path name

``infer(params, inputs) -> {task: outputs}`` is the model's deterministic forward pass
(``MultiTaskModel.apply`` with ``rng=None``): ``params`` is the *list* of parameter leaves in
the order of ``metadata["params"]["names"]``, ``inputs`` the dict of the input's batch keys
(``mtl_jax.data.spec``), each with a symbolic batch dimension ``b`` and, for text, a
symbolic sequence length ``l``. Outputs are the heads' (``mtl_jax.models.heads``): logits
for classification, tagging and multilabel tasks, normalised values for regression.

Loading needs ``jax`` and ``numpy`` only (plus ``flatbuffers``, which ``jax.export``
serialisation uses): no flax and no model code, so an artifact runs wherever jax does.
An artifact of another format version is refused with one line naming both versions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from jax import export

from mtl_jax.errors import ConfigError, DataError

FORMAT = "mtl_jax.export/1"
METADATA_FILE = "metadata.json"
FUNCTION_FILE = "inference.jax"
PARAMS_FILE = "params.npz"
PLATFORMS = ("cpu", "cuda")
BATCH_AXIS, LENGTH_AXIS = "b", "l"


def input_layout(kind: str, key_shapes: Mapping[str, tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """{batch key: {"dtype", "shape"}} with "b" / "l" naming the symbolic axes."""
    return {key: {"dtype": dtype, "shape": list(shape)} for key, (dtype, shape) in key_shapes.items()}


def symbolic_inputs(layout: Mapping[str, Mapping[str, Any]]) -> dict[str, jax.ShapeDtypeStruct]:
    """``jax.ShapeDtypeStruct`` per input key; "b" and "l" become symbolic dimensions of one scope."""
    b, l = export.symbolic_shape(f"{BATCH_AXIS}, {LENGTH_AXIS}")
    symbols = {BATCH_AXIS: b, LENGTH_AXIS: l}
    return {
        key: jax.ShapeDtypeStruct(tuple(symbols.get(d, d) for d in entry["shape"]), np.dtype(entry["dtype"]))
        for key, entry in layout.items()
    }


def export_function(
    infer: Callable[[list, dict], dict],
    params: Sequence[np.ndarray],
    layout: Mapping[str, Mapping[str, Any]],
    platforms: Sequence[str] = PLATFORMS,
) -> tuple[export.Exported, tuple[str, ...]]:
    """``infer`` exported for ``platforms``; if one cannot be lowered, for the CPU alone.

    Returns the ``Exported`` and the platforms it was lowered for."""
    param_shapes = [jax.ShapeDtypeStruct(np.shape(p), np.asarray(p).dtype) for p in params]
    inputs = symbolic_inputs(layout)
    try:
        exported = export.export(jax.jit(infer), platforms=tuple(platforms))(param_shapes, inputs)
        return exported, tuple(platforms)
    except Exception:  # noqa: BLE001 - any lowering failure: fall back to the CPU only
        if tuple(platforms) == ("cpu",):
            raise
        exported = export.export(jax.jit(infer), platforms=("cpu",))(param_shapes, inputs)
        return exported, ("cpu",)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """ConfigError unless ``out`` is absent, empty, or (with ``overwrite``) an artifact."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; fix: name a new or empty directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / METADATA_FILE).is_file():
        raise ConfigError(f"--out {str(out)!r} is not empty and holds no exported model; fix: name a new or empty directory")
    if not overwrite:
        raise ConfigError(f"--out {str(out)!r} already holds an exported model; fix: pass --overwrite to replace it, or name another directory")


def write_artifact(
    out: str | os.PathLike[str],
    exported: export.Exported,
    named_params: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write the three files into a temporary sibling directory, then move it to ``out``
    (an existing artifact there is replaced only with ``overwrite``)."""
    out = Path(out)
    check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the artifact is not
    try:
        (staging / FUNCTION_FILE).write_bytes(exported.serialize())
        np.savez(staging / PARAMS_FILE, **{name: np.asarray(value) for name, value in named_params.items()})
        full = {"format": FORMAT, **metadata}
        full["params"] = {"file": PARAMS_FILE, "names": list(named_params), **dict(metadata.get("params", {}))}
        (staging / METADATA_FILE).write_text(json.dumps(full, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- loading


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``metadata.json`` of an artifact; DataError if absent, corrupt or of another format."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise DataError(f"--model {str(directory)!r} holds no {METADATA_FILE}; fix: pass a directory written by `mtl-jax export`")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is corrupt ({error}); fix: export the model again with `mtl-jax export`") from error
    found = metadata.get("format") if isinstance(metadata, dict) else None
    if found != FORMAT:
        raise DataError(
            f"{path}: artifact format {found!r}, this mtl_jax reads {FORMAT!r}; fix: re-export the run with"
            " `mtl-jax export`, or load it with the mtl_jax version that wrote it"
        )
    return metadata


@dataclasses.dataclass
class Artifact:
    """A loaded artifact: ``run(inputs)`` gives every task's outputs as NumPy arrays."""

    directory: Path
    metadata: dict[str, Any]
    exported: export.Exported
    params: list[jax.Array]

    def __post_init__(self) -> None:
        self._call = jax.jit(self.exported.call)

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(self.metadata["input"]["keys"])

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task["name"] for task in self.metadata["tasks"])

    def run_on_device(self, inputs: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Outputs as device arrays (asynchronous)."""
        layout = self.metadata["input"]["keys"]
        arrays = {key: np.asarray(inputs[key], dtype=layout[key]["dtype"]) for key in layout}
        return self._call(self.params, arrays)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{task: outputs} for a batch of ``inputs`` (the input's batch keys)."""
        return {name: np.asarray(value) for name, value in jax.device_get(self.run_on_device(inputs)).items()}


def read_params(directory: Path, names: Sequence[str]) -> list[np.ndarray]:
    """The parameter leaves in the order of ``names``; DataError if any is missing."""
    path = directory / PARAMS_FILE
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [name for name in names if name not in stored.files]
            if missing:
                raise DataError(f"{path} lacks {len(missing)} parameters, e.g. {missing[:2]}; fix: export the model again")
            return [np.asarray(stored[name]) for name in names]
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is unreadable ({error}); fix: export the model again with `mtl-jax export`") from error


def load_artifact(directory: str | os.PathLike[str]) -> Artifact:
    """Load an exported model (jax and numpy only); DataError naming the file if it is bad."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    function_path = directory / FUNCTION_FILE
    try:
        exported = export.deserialize(bytearray(function_path.read_bytes()))
    except Exception as error:  # noqa: BLE001 - a missing or corrupt file, whatever jax raises
        raise DataError(f"{function_path} is unreadable ({type(error).__name__}); fix: export the model again") from error
    params = read_params(directory, metadata["params"]["names"])
    return Artifact(directory, metadata, exported, [jax.device_put(p) for p in params])

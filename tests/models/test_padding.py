"""Padding does not change a sequence's (or a molecule's) outputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.factory import build_from_config
from tests.models.fixtures import GRAPHS, LENGTH, SMALL, TEXT, random_batch, task_names

EXTRA = 5


def pad_text(batch: dict) -> dict:
    padded = dict(batch)
    for key in ("tokens", "tokens_mask", "pos", "pos_mask"):
        x = batch[key]
        padded[key] = np.concatenate([x, np.zeros((x.shape[0], EXTRA), x.dtype)], axis=1)
    return padded


def pad_graph(batch: dict) -> dict:
    padded = dict(batch)
    for key in ("atomic_numbers", "atoms_mask", "positions"):
        x = batch[key]
        widths = [(0, 0), (0, EXTRA)] + [(0, 0)] * (x.ndim - 2)
        padded[key] = np.pad(x, widths)
    return padded


def outputs_and_padded(model, params, batch: dict, other: dict) -> tuple:
    """(outputs on ``batch``, outputs on ``other``, z of ``other``) from ONE compiled program
    (three eager passes would dispatch and compile every op of the model one by one)."""
    both = jax.jit(lambda p, a, b: (model.apply(p, a), model.apply(p, b), model.encode(p["shared"], b, None)))
    return jax.device_get(both(params, batch, other))


@pytest.mark.parametrize(
    "trunk, positions",
    [("bag_of_embeddings", ""), ("bilstm", ""), ("bigru", ""), ("transformer", "sinusoidal"), ("transformer", "learned")],
)
def test_appending_padding_changes_no_text_output(trunk, positions, rng):
    config = dict(SMALL, trunk=trunk, num_layers=2 if trunk == "transformer" else 1, positions=positions or "sinusoidal")
    model, params = build_from_config(config, TEXT, task_names(TEXT), nnx.Rngs(0))
    batch = random_batch(rng, TEXT)
    short, long, z = outputs_and_padded(model, params, batch, pad_text(batch))
    for name in ("kind", "tags", "score"):
        np.testing.assert_allclose(long[name], short[name], rtol=1e-5, atol=1e-6)
    real = batch["tokens_mask"]
    np.testing.assert_allclose(long["pos"][:, :LENGTH][real], short["pos"][real], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(z["tokens"])[:, LENGTH:] == 0), "padding features must be zero"


@pytest.mark.parametrize("readout", ["sum", "set2set"])
def test_appending_padding_atoms_changes_no_molecule_output(readout, rng):
    config = dict(SMALL, trunk="mpnn", readout=readout, num_layers=2)
    model, params = build_from_config(config, GRAPHS, task_names(GRAPHS), nnx.Rngs(0))
    batch = random_batch(rng, GRAPHS)
    short, long, _ = outputs_and_padded(model, params, batch, pad_graph(batch))
    for name in task_names(GRAPHS):
        np.testing.assert_allclose(long[name], short[name], rtol=1e-5, atol=1e-6)


def test_real_tokens_do_change_outputs(rng):
    """The invariance above is not vacuous: changing a real token changes the output."""
    model, params = build_from_config(dict(SMALL, trunk="bilstm"), TEXT, ["kind"], nnx.Rngs(0))
    batch = random_batch(rng, TEXT)
    changed = dict(batch, tokens=batch["tokens"].copy())
    changed["tokens"][:, 0] = np.where(changed["tokens"][:, 0] == 2, 3, 2)
    original, changed_outputs, _ = outputs_and_padded(model, params, batch, changed)
    diff = np.abs(changed_outputs["kind"] - original["kind"])
    assert np.all(diff.max(axis=-1) > 1e-6)

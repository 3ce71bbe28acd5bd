"""Dotted names of pytree leaves: how parameters are stored, matched and reported.

The convention is the checkpoints' (``mtl_jax.training.checkpoint``): one path entry per
level (dict key, attribute name or sequence index), joined by dots, e.g.
``shared.trunk.embed.embedding`` or ``tasks.upos.output.kernel``.
"""

from __future__ import annotations

from typing import Any

import jax

from mtl_jax.types import PyTree, path_name


def named_leaves(tree: PyTree) -> dict[str, Any]:
    """{dotted name: leaf} in the tree's flattening order."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}

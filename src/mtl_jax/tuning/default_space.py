"""The search space of an experiment file without ``get_sweep()``.

Built from the resolved config, so every key exists and has the right type:

- ``optimizer.learning_rate``: log-uniform over [lr / 10, lr · 10] around the config's;
- ``optimizer.weight_decay``: log-uniform over [1e-6, 1e-2], when the optimiser has one;
- ``model.dropout``: uniform over [0, 0.5]; ``model.word_dropout``: [0, 0.3] for text trunks;
- ``batch_size``: half, the same or twice the config's (multiples of the device count);
- ``aggregator``: the config's method and ``sum`` (EW), PCGrad, MGDA, CAGrad (with ``c``
  uniform over [0.1, 0.9]), UPGrad and Nash-MTL; ``mode``: full or representation (the
  config's method is left out of the choice when it supports only one mode);
- ``model.architecture``: hard sharing, MMoE (2–8 experts), CGC, PLE, cross-stitch, MTAN;
- ``model.hidden``: half, the same or twice the config's width; ``model.num_layers``:
  1–3 for the trunks that stack layers (recurrent, transformer, MPNN, MLP).
"""

from __future__ import annotations

from typing import Any, Mapping

from mtl_jax.tuning.space import Choice, Float, Int

TEXT_TRUNKS = ("bag_of_embeddings", "bilstm", "bigru", "transformer")
LAYERED_TRUNKS = ("bilstm", "bigru", "transformer", "mpnn", "mlp")
METHODS = ("sum", "pcgrad", "mgda", "cagrad", "upgrad", "nashmtl")
ARCHITECTURES = ("hard", "mmoe", "cgc", "ple", "cross_stitch", "mtan")
BOTH_MODES = ("full", "representation")


def _around(value: int, num_devices: int) -> list[int]:
    """Half, the same and twice ``value``, kept to positive multiples of ``num_devices``."""
    return sorted({v for v in (value // 2, value, value * 2) if v > 0 and v % num_devices == 0} | {value})


def default_space(config: Mapping[str, Any], *, num_devices: int = 1, method_modes: Mapping[str, tuple] | None = None) -> dict:
    """The documented default space for the resolved ``config`` (see the module docstring).

    ``method_modes``: {aggregator: its modes}; the config's own method joins the choice only
    if it supports both modes (unknown: it joins).
    """
    optimizer, model = config["optimizer"], config["model"]
    learning_rate = optimizer.get("learning_rate", 1e-3)
    learning_rate = float(learning_rate) if isinstance(learning_rate, (int, float)) and learning_rate > 0 else 1e-3
    space: dict[str, Any] = {"optimizer.learning_rate": Float(learning_rate / 10, learning_rate * 10, log=True)}
    if isinstance(optimizer.get("weight_decay"), float):
        space["optimizer.weight_decay"] = Float(1e-6, 1e-2, log=True)
    space["model.dropout"] = Float(0.0, 0.5)
    if model.get("trunk") in TEXT_TRUNKS:
        space["model.word_dropout"] = Float(0.0, 0.3)
    space["batch_size"] = Choice(_around(config["batch_size"], num_devices))
    own = config["aggregator"]
    modes = (method_modes or {}).get(own, BOTH_MODES)
    methods = list(METHODS) + ([own] if own not in METHODS and tuple(modes) == BOTH_MODES else [])
    space["aggregator"] = Choice(methods, when={"cagrad": {"aggregator_options.c": Float(0.1, 0.9)}})
    space["mode"] = Choice(list(BOTH_MODES))
    space["model.architecture"] = Choice(list(ARCHITECTURES), when={"mmoe": {"model.num_experts": Int(2, 8)}})
    if isinstance(model.get("hidden"), int):
        space["model.hidden"] = Choice(_around(model["hidden"], 1))
    if model.get("trunk") in LAYERED_TRUNKS:
        space["model.num_layers"] = Int(1, 3)
    return space

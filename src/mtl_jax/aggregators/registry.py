"""The registry of aggregation methods: name -> (factory, one-line description).

The description is the first line of the factory's docstring, which names the method, its
paper and its default hyper-parameters (``mtl-jax methods`` prints it). ``get_aggregator``
passes the options to the factory, whose keyword defaults are the papers'.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from mtl_jax.aggregators.aligned_mtl import aligned_mtl
from mtl_jax.aggregators.auto_lambda import auto_lambda
from mtl_jax.aggregators.cagrad import cagrad
from mtl_jax.aggregators.conflict_free import config as conflict_free
from mtl_jax.aggregators.constant import constant
from mtl_jax.aggregators.cosmos import cosmos
from mtl_jax.aggregators.cr_mogm import cr_mogm
from mtl_jax.aggregators.db_mtl import db_mtl
from mtl_jax.aggregators.dualproj import dualproj
from mtl_jax.aggregators.dwa import dwa
from mtl_jax.aggregators.ew import ew_mean, ew_sum
from mtl_jax.aggregators.excess_mtl import excess_mtl
from mtl_jax.aggregators.fairgrad import fairgrad
from mtl_jax.aggregators.famo import famo
from mtl_jax.aggregators.forum import forum
from mtl_jax.aggregators.geometric_mean import geometric_mean
from mtl_jax.aggregators.gls import gls
from mtl_jax.aggregators.graddrop import graddrop
from mtl_jax.aggregators.gradnorm import gradnorm
from mtl_jax.aggregators.gradvac import gradvac
from mtl_jax.aggregators.imtl_g import imtl_g
from mtl_jax.aggregators.imtl_l import imtl_l
from mtl_jax.aggregators.kinds import Aggregator
from mtl_jax.aggregators.krum import krum
from mtl_jax.aggregators.mgda import mgda, mgda_ub
from mtl_jax.aggregators.moco import moco
from mtl_jax.aggregators.modo import modo
from mtl_jax.aggregators.moml import moml
from mtl_jax.aggregators.nashmtl import nash_mtl
from mtl_jax.aggregators.pbi import pbi
from mtl_jax.aggregators.pcd import pcd
from mtl_jax.aggregators.pcgrad import pcgrad
from mtl_jax.aggregators.rlw import random_weighting, rlw
from mtl_jax.aggregators.sdmgrad import sdmgrad
from mtl_jax.aggregators.stch import stch
from mtl_jax.aggregators.trimmed_mean import trimmed_mean
from mtl_jax.aggregators.upgrad import upgrad
from mtl_jax.aggregators.uw import uw
from mtl_jax.errors import ConfigError

Factory = Callable[..., Aggregator]

FACTORIES: dict[str, Factory] = {
    "sum": ew_sum,
    "mean": ew_mean,
    "pcgrad": pcgrad,
    "mgda": mgda,
    "upgrad": upgrad,
    "dualproj": dualproj,
    "cagrad": cagrad,
    "nashmtl": nash_mtl,
    "fairgrad": fairgrad,
    "sdmgrad": sdmgrad,
    "imtl_g": imtl_g,
    "aligned_mtl": aligned_mtl,
    "gradvac": gradvac,
    "config": conflict_free,
    "krum": krum,
    "rlw": rlw,
    "cr_mogm": cr_mogm,
    "mgda_ub": mgda_ub,
    "random": random_weighting,
    "constant": constant,
    "graddrop": graddrop,
    "trimmed_mean": trimmed_mean,
    "moco": moco,
    "modo": modo,
    "excess_mtl": excess_mtl,
    "db_mtl": db_mtl,
    "uw": uw,
    "dwa": dwa,
    "gradnorm": gradnorm,
    "famo": famo,
    "gls": gls,
    "geometric_mean": geometric_mean,
    "stch": stch,
    "imtl_l": imtl_l,
    "pcd": pcd,
    "cosmos": cosmos,
    "pbi": pbi,
    "auto_lambda": auto_lambda,
    "moml": moml,
    "forum": forum,
}


def description(factory: Factory) -> str:
    """The first line of ``factory``'s docstring, without its final full stop."""
    doc = inspect.getdoc(factory)
    if not doc:
        raise ValueError(f"aggregator factory {factory.__qualname__} needs a docstring")
    return doc.splitlines()[0].rstrip(".")


REGISTRY: dict[str, tuple[Factory, str]] = {
    name: (factory, description(factory)) for name, factory in FACTORIES.items()
}


def _accepted_options(factory: Factory) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(factory).parameters)


def get_aggregator(name: str, **options: Any) -> Aggregator:
    """The aggregator registered under ``name``, built with ``options``.

    Raises ConfigError naming the problem and the fix: an unknown name (with the accepted
    names), an unknown or missing option (with the accepted ones), or a rejected value.
    """
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown aggregator {name!r}; accepted values: {', '.join(sorted(REGISTRY))}"
        )
    factory = REGISTRY[name][0]
    accepted = _accepted_options(factory)
    listing = ", ".join(accepted) if accepted else "none"
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"aggregator {name!r} has no option {', '.join(map(repr, unknown))}; accepted options: {listing}"
        )
    missing = [
        key for key, parameter in accepted.items()
        if parameter.default is inspect.Parameter.empty and key not in options
    ]
    if missing:
        raise ConfigError(
            f"aggregator {name!r} needs the option {', '.join(map(repr, missing))} "
            f"(e.g. aggregator_options={{{missing[0]!r}: ...}}); accepted options: {listing}"
        )
    try:
        return factory(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"aggregator {name!r} rejects options {options}: {error}") from error

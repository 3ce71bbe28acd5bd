"""Aggregators: pure functions from task-gradient Gramians (or losses) to task weights."""

from __future__ import annotations

from typing import Callable

from mtl_jax.aggregators.base import Aggregator, WeightingInputs
from mtl_jax.aggregators.ew import ew_mean, ew_sum
from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.aligned_mtl import aligned_mtl
from mtl_jax.aggregators.cagrad import cagrad
from mtl_jax.aggregators.conflict_free import config as conflict_free
from mtl_jax.aggregators.cr_mogm import cr_mogm
from mtl_jax.aggregators.dualproj import dualproj
from mtl_jax.aggregators.fairgrad import fairgrad
from mtl_jax.aggregators.gradvac import gradvac
from mtl_jax.aggregators.imtl_g import imtl_g
from mtl_jax.aggregators.krum import krum
from mtl_jax.aggregators.mgda import mgda
from mtl_jax.aggregators.nashmtl import nash_mtl
from mtl_jax.aggregators.pcgrad import pcgrad, pcgrad_weights, random_visit_orders
from mtl_jax.aggregators.rlw import rlw
from mtl_jax.aggregators.sdmgrad import sdmgrad
from mtl_jax.aggregators.upgrad import upgrad

REGISTRY: dict[str, tuple[Callable[[], Aggregator], str]] = {
    "sum": (ew_sum, "EW: plain sum of the task gradients"),
    "mean": (ew_mean, "EW: mean of the task gradients"),
    "pcgrad": (pcgrad, "PCGrad (Yu et al. 2020): project away conflicting components"),
    "mgda": (mgda, "MGDA (Sener & Koltun 2018): exact min-norm point of the hull of task gradients (MGDA-UB in representation mode)"),
    "upgrad": (upgrad, "UPGrad (Quinton & Layne 2024): mean of each gradient's projection onto the dual cone"),
    "dualproj": (dualproj, "DualProj (Quinton & Layne 2024): mean gradient projected onto the dual cone"),
    "cagrad": (cagrad, "CAGrad (Liu et al. 2021, c=0.4): best worst-case improvement near the mean gradient"),
    "nashmtl": (nash_mtl, "Nash-MTL (Navon et al. 2022): Nash bargaining weights, G a = 1/a"),
    "fairgrad": (fairgrad, "FairGrad (Ban & Ji 2024, alpha=1): alpha-fair weights, G w = w^(-1/alpha)"),
    "sdmgrad": (sdmgrad, "SDMGrad (Xiao et al. 2023, lambda=0.3): min-norm direction pulled toward the mean, deterministic"),
    "imtl_g": (imtl_g, "IMTL-G (Liu et al. 2021): equal projection of the update on every unit task gradient"),
    "aligned_mtl": (aligned_mtl, "Aligned-MTL (Senushkin et al. 2023): condition-number-1 aligned gradient system, min-eigenvalue scale"),
    "gradvac": (gradvac, "GradVac (Wang et al. 2021): align pairwise cosines to EMA targets (beta=1e-2)"),
    "config": (conflict_free, "ConFIG (Liu et al. 2024): pseudo-inverse of unit gradients, rescaled by the sum of projections"),
    "krum": (krum, "Krum (Blanchard et al. 2017): the task gradient with the smallest neighbour-distance score (f=1, needs T >= 5)"),
    "rlw": (rlw, "RLW (Lin et al. 2022): softmax of standard-normal random weights each step"),
    "cr_mogm": (cr_mogm, "CR-MOGM (Zhou et al. 2022): EMA (alpha=0.9) of MGDA min-norm weights"),
}


def get_aggregator(name: str) -> Aggregator:
    """The aggregator registered under ``name``; a clear error naming the choices otherwise."""
    if name not in REGISTRY:
        raise KeyError(
            f"unknown aggregator {name!r}; accepted values: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name][0]()


__all__ = [
    "Aggregator",
    "WeightingInputs",
    "REGISTRY",
    "get_aggregator",
    "gramian",
    "weighted_sum",
    "pcgrad_weights",
    "random_visit_orders",
]

"""Aggregators: pure functions from task-gradient Gramians, losses or Jacobians to updates.

``REGISTRY`` maps a name to ``(factory, one-line description)``; ``get_aggregator(name,
**options)`` passes the options to the factory, whose keyword defaults are the papers'.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from mtl_jax.aggregators.base import Aggregator, WeightingInputs, initial_state, needs_jacobian
from mtl_jax.aggregators.ew import ew_mean, ew_sum
from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.aligned_mtl import aligned_mtl
from mtl_jax.aggregators.cagrad import cagrad
from mtl_jax.aggregators.conflict_free import config as conflict_free
from mtl_jax.aggregators.constant import constant
from mtl_jax.aggregators.db_mtl import db_mtl
from mtl_jax.aggregators.dwa import dwa
from mtl_jax.aggregators.excess_mtl import excess_mtl
from mtl_jax.aggregators.famo import famo
from mtl_jax.aggregators.geometric_mean import geometric_mean
from mtl_jax.aggregators.gls import gls
from mtl_jax.aggregators.graddrop import graddrop
from mtl_jax.aggregators.gradnorm import gradnorm
from mtl_jax.aggregators.imtl_l import imtl_l
from mtl_jax.aggregators.moco import moco
from mtl_jax.aggregators.modo import modo
from mtl_jax.aggregators.stch import stch
from mtl_jax.aggregators.trimmed_mean import trimmed_mean
from mtl_jax.aggregators.uw import uw
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
from mtl_jax.errors import ConfigError


def mgda_ub() -> Aggregator:
    """MGDA-UB (Sener & Koltun 2018, Sec. 3.3): MGDA on the representation's gradients."""
    return mgda()._replace(name="mgda_ub", modes=("representation",))


def random() -> Aggregator:
    """torchjd's ``Random``: softmax of standard-normal weights each step, i.e. RLW."""
    return rlw()._replace(name="random")


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
    "mgda_ub": (mgda_ub, "MGDA-UB (Sener & Koltun 2018): MGDA on the representation gradients (representation mode only)"),
    "random": (random, "Random (torchjd): softmax of standard-normal weights each step, the same as RLW"),
    "constant": (constant, "Constant: fixed user weights, option weights=[w_1, ..., w_T] (required)"),
    "graddrop": (graddrop, "GradDrop (Chen et al. 2020, leak=0): per-coordinate sign dropout by sign purity (Jacobian level)"),
    "trimmed_mean": (trimmed_mean, "TrimmedMean (torchjd, trim=1): coordinate-wise mean without the trim largest and smallest (Jacobian level)"),
    "moco": (moco, "MoCo (Fernando et al. 2023): tracked task gradients and projected lambda step (full mode only)"),
    "modo": (modo, "MoDo (Chen et al. 2023, gamma=1e-3, rho=0.1): projected lambda step on the Gramian, single-batch approximation"),
    "excess_mtl": (excess_mtl, "ExcessMTL (He et al. 2024, step 1e-2): weights by AdaGrad-estimated excess risks (full mode only)"),
    "db_mtl": (db_mtl, "DB-MTL (Lin et al. 2023, beta=0.9): log-losses, EMA gradients rescaled to the largest norm (full mode only)"),
    "uw": (uw, "UW (Kendall et al. 2018): learnable log-variances, w = exp(-s)/2"),
    "dwa": (dwa, "DWA (Liu et al. 2019, T=2): softmax of per-step loss ratios"),
    "gradnorm": (gradnorm, "GradNorm (Chen et al. 2018, alpha=1.5): learnable weights equalising weighted gradient norms"),
    "famo": (famo, "FAMO (Liu et al. 2023, lr=0.025, decay=1e-3): softmax logits balancing log-loss decreases"),
    "gls": (gls, "GLS (Chennupati et al. 2019): minimise the geometric mean of the losses"),
    "geometric_mean": (geometric_mean, "Geometric mean: minimise the mean log-loss (scale-invariant GLS)"),
    "stch": (stch, "STCH (Lin et al. 2024, mu=1): smooth Tchebycheff of nadir-normalised log-losses"),
    "imtl_l": (imtl_l, "IMTL-L (Liu et al. 2021): learnable loss scales, L = sum exp(s) L - s"),
}


def _accepted_options(factory: Callable[..., Aggregator]) -> dict[str, inspect.Parameter]:
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


__all__ = [
    "Aggregator",
    "WeightingInputs",
    "REGISTRY",
    "get_aggregator",
    "initial_state",
    "needs_jacobian",
    "gramian",
    "weighted_sum",
    "pcgrad_weights",
    "random_visit_orders",
]

"""The registry: one-line descriptions, options passed to the factories with the papers'
defaults, and ConfigError naming the unknown, missing or rejected option and the accepted ones."""

from __future__ import annotations

import inspect

import pytest

from mtl_jax.aggregators import REGISTRY, get_aggregator
from mtl_jax.aggregators.cagrad import cagrad
from mtl_jax.errors import ConfigError

ISSUE_6 = {
    "mgda", "mgda_ub", "cagrad", "gradvac", "imtl_g", "nashmtl", "aligned_mtl", "upgrad", "dualproj",
    "config", "graddrop", "fairgrad", "sdmgrad", "moco", "modo", "excess_mtl", "cr_mogm", "krum",
    "trimmed_mean", "random", "constant", "mean", "sum", "pcgrad",
    "uw", "dwa", "gradnorm", "rlw", "famo", "db_mtl", "gls", "stch", "imtl_l", "geometric_mean",
}


def test_every_method_of_the_issue_is_registered_with_a_one_line_description():
    assert ISSUE_6 <= set(REGISTRY)
    for name, (factory, description) in REGISTRY.items():
        assert description and "\n" not in description and len(description) < 140, name
        assert callable(factory)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"constant"}))
def test_builds_with_defaults_under_its_name(name):
    aggregator = get_aggregator(name)
    assert aggregator.name == name
    assert set(aggregator.modes) <= {"full", "representation"} and aggregator.modes


def test_options_reach_the_factory():
    assert get_aggregator("constant", weights=[1.0, 2.0]).init(2) == ()
    default = inspect.signature(cagrad).parameters["c"].default
    assert default == 0.4  # CAGrad's paper default
    with pytest.raises(ValueError, match="3 tasks"):
        get_aggregator("constant", weights=[1.0, 2.0]).init(3)


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"'moco' has no option 'betta'; accepted options: beta, beta_sigma"):
        get_aggregator("moco", betta=0.1)
    with pytest.raises(ConfigError, match="'mgda' has no option 'c'; accepted options: none"):
        get_aggregator("mgda", c=1.0)


def test_missing_required_option_says_how_to_pass_it():
    with pytest.raises(ConfigError, match=r"'constant' needs the option 'weights'.*aggregator_options"):
        get_aggregator("constant")


def test_rejected_value_is_a_config_error():
    with pytest.raises(ConfigError, match="famo.*learning_rate > 0"):
        get_aggregator("famo", learning_rate=-1.0)

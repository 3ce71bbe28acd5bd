"""A sweep's Optuna study: created once, continued by every later run of the same command.

The study records, as user attributes, the search space (``describe``d), the base config
and the direction; opening it again with a different space or base config is refused with
one line naming the difference (the trials would not be comparable).

Trial slots. ``--trials N`` asks for N trials in the study. Before the workers start, the
study is topped up with empty *waiting* trials (``enqueue_trial({})``) until it holds N
that count: complete, pruned, running, waiting, or failed by the objective itself (a bad
combination, a NaN). Workers claim waiting trials one at a time, atomically (a waiting
trial moves to running once, in the storage's transaction), so no trial runs twice and the
study never grows past N, however many workers on however many machines. A trial whose
worker was killed is failed by the heartbeat check and does not count; its retry (a new
waiting trial with the same parameters) does, and when retries are exhausted the next run
of the command tops the study up again.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from mtl_jax.errors import ConfigError
from mtl_jax.tuning.space import space_differences

class Preempted(Exception):
    """A trial's training stopped on SIGTERM with a checkpoint: it is failed and retried
    (the retry resumes its run directory), not counted as failed by the objective."""


SPACE_ATTR, CONFIG_ATTR = "mtl_jax_space", "mtl_jax_config"
ERROR_ATTR, RUN_DIR_ATTR = "error", "run_dir"


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += config_differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def load(storage: Any, name: str, **kwargs: Any) -> Any | None:
    """The study ``name`` in ``storage``, or None."""
    import optuna  # noqa: PLC0415

    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        return None


def check_same(study: Any, space: Mapping[str, Any], config: Mapping[str, Any], direction: str) -> None:
    """ConfigError naming how the stored study differs from this sweep."""
    name = study.study_name
    stored_space = study.user_attrs.get(SPACE_ATTR)
    if stored_space is None:
        raise ConfigError(f"study {name!r} was not written by mtl-jax sweep (no stored space); pass another --study")
    differences = space_differences(stored_space, space)
    if differences:
        raise ConfigError(
            f"study {name!r} was written with a different search space ({'; '.join(differences[:3])});"
            " pass another --study, or restore the space"
        )
    stored_config = study.user_attrs.get(CONFIG_ATTR, {})
    changed = config_differences(stored_config, json.loads(json.dumps(config)))
    if changed:
        raise ConfigError(
            f"study {name!r} was written with a different base config (differs at {', '.join(changed[:5])});"
            " pass another --study, or the same config and --set"
        )
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {name!r} {study.direction.name.lower()}s its objective, this sweep would {direction} it; pass another --study")


def open_or_create(storage: Any, name: str, space: Mapping[str, Any], config: Mapping[str, Any], direction: str) -> Any:
    """The existing study (checked against this sweep) or a new one recording it."""
    import optuna  # noqa: PLC0415

    study = load(storage, name)
    if study is not None:
        check_same(study, space, config, direction)
        return study
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True)
    if SPACE_ATTR not in study.user_attrs:  # another machine may have created it a moment ago
        study.set_user_attr(SPACE_ATTR, dict(space))
        study.set_user_attr(CONFIG_ATTR, json.loads(json.dumps(config)))
    else:
        check_same(study, space, config, direction)
    return study


def counts(trial: Any) -> bool:
    """Whether ``trial`` fills one of the N slots (a killed worker's failed trial does not)."""
    from optuna.trial import TrialState  # noqa: PLC0415

    if trial.state == TrialState.FAIL:
        return ERROR_ATTR in trial.user_attrs
    return True


def fail_stale(study: Any) -> None:
    """Fail the running trials whose heartbeat stopped (their retries become waiting trials)."""
    import warnings  # noqa: PLC0415

    import optuna  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" since Optuna 2.9
        optuna.storages.fail_stale_trials(study)


def top_up(study: Any, trials: int, points: Sequence[Mapping[str, Any]] | None = None) -> int:
    """Fail stale trials, then enqueue waiting trials until ``trials`` count; how many were
    enqueued. Without ``points`` they are empty (the sampler draws their parameters); with
    ``points`` (a grid) each gets the next point no counted trial holds."""
    fail_stale(study)
    counted = [t for t in study.get_trials(deepcopy=False) if counts(t)]
    missing = max(trials - len(counted), 0)
    if points is None:
        for _ in range(missing):
            study.enqueue_trial({}, skip_if_exists=False)
        return missing
    taken = [dict(t.params) or dict(t.system_attrs.get("fixed_params", {})) for t in counted]
    fresh = [dict(point) for point in points if dict(point) not in taken][:missing]
    for point in fresh:
        study.enqueue_trial(point, skip_if_exists=False)
    return len(fresh)


def claim_waiting(study: Any) -> int | None:
    """Move one waiting trial to running and return its id; None when none is waiting.

    ``set_trial_state_values`` changes WAITING to RUNNING in one transaction and answers
    False (or raises) when another worker was first.
    """
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    storage = study._storage  # noqa: SLF001 - the public storage API needs the study's storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):  # noqa: SLF001
                return trial._trial_id  # noqa: SLF001
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def finished_count(study: Any) -> int:
    """Finished trials that fill a slot (complete, pruned, failed by the objective)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished() and counts(t))


def filled(study: Any) -> int:
    """Trials that finished and count, or are running: a worker claims no more than N of them."""
    from optuna.trial import TrialState  # noqa: PLC0415

    return sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.RUNNING or (t.state.is_finished() and counts(t))
    )


def tally(study: Any) -> dict[str, int]:
    """{state name: number of trials}, and 'counted'."""
    trials = study.get_trials(deepcopy=False)
    out: dict[str, int] = {}
    for trial in trials:
        out[trial.state.name.lower()] = out.get(trial.state.name.lower(), 0) + 1
    out["counted"] = sum(counts(t) for t in trials)
    return out

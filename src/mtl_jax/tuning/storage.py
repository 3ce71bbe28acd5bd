"""Where a study lives: an Optuna RDB storage (SQLite on one machine, PostgreSQL on many).

``sqlite:///<path>`` (default: ``<sweep dir>/study.db`` beside the trial runs) or
``postgresql://user:password@host:port/database`` (``postgresql+psycopg2://`` too). Every
worker opens the storage with a heartbeat: a running trial records one every
``heartbeat`` seconds, and a trial whose last heartbeat is older than ``3 × heartbeat`` (its
worker was killed) is failed by the next worker that looks and retried once with the same
parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``); the retry resumes the killed
trial's run directory.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mtl_jax.errors import ConfigError

SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2")
DEFAULT_HEARTBEAT = 10  # seconds
GRACE_FACTOR = 3
MAX_RETRY = 2
CONNECT_TIMEOUT = 5  # seconds, PostgreSQL


def default_url(sweep_dir: str | Path) -> str:
    return f"sqlite:///{(Path(sweep_dir) / 'study.db').resolve()}"


def shown(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def check_url(url: str) -> None:
    """ConfigError for a URL that is not a SQLite file or a PostgreSQL database."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(
            f"--storage {shown(url)!r} is not a storage URL we accept; use sqlite:///path/to/study.db or"
            " postgresql://user:password@host:port/database"
        )
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise ConfigError(f"--storage {url!r}: name a database file, e.g. sqlite:///runs/sweep/study.db (workers share it)")
        return
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError as error:
        raise ConfigError(f"--storage {shown(url)!r}: bad port ({error}); use postgresql://user:password@host:port/database") from error
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(
            f"--storage {shown(url)!r} names no host or no database; use postgresql://user:password@host:port/database"
        )


def engine_url(url: str) -> str:
    """The SQLAlchemy URL: ``postgresql://`` is read with psycopg2 (the tune extra's
    driver; SQLAlchemy 2.1 would pick psycopg 3 otherwise)."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme == "postgresql" else url


def sqlite_path(url: str) -> Path | None:
    scheme, _, rest = url.partition("://")
    return Path(rest[1:]) if scheme == "sqlite" else None


def check_reachable(url: str) -> None:
    """ConfigError unless the database answers (SQLite: its folder can hold the file).
    Creates nothing."""
    path = sqlite_path(url)
    if path is not None:
        folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if folder is None or not folder.is_dir():
            raise ConfigError(f"--storage {url!r}: {path.parent} cannot be created; pick a writable folder")
        return
    import sqlalchemy  # noqa: PLC0415

    try:
        engine = sqlalchemy.create_engine(engine_url(url), connect_args={"connect_timeout": CONNECT_TIMEOUT})
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as error:
        raise ConfigError(f"--storage {shown(url)!r} needs {error.name}; install the tune extra: pip install 'mtl_jax[tune]'") from error
    except Exception as error:  # sqlalchemy.exc.OperationalError and friends
        reason = " ".join(str(getattr(error, "orig", error)).split())[:200]
        raise ConfigError(f"--storage {shown(url)!r}: the database cannot be reached ({reason}); start it or fix the URL") from error


def _retry_callback() -> Any:
    import optuna  # noqa: PLC0415

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=MAX_RETRY)


def open_storage(url: str, heartbeat: int = DEFAULT_HEARTBEAT) -> Any:
    """An ``optuna.storages.RDBStorage`` with heartbeat and retry of stale trials (creates the
    tables, and the SQLite file, on first use)."""
    import optuna  # noqa: PLC0415

    path = sqlite_path(url)
    engine_kwargs: dict[str, Any] = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    parameters = inspect.signature(optuna.storages.RDBStorage).parameters
    callback_name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in parameters else "failed_trial_callback"
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat is "experimental" in Optuna
        return optuna.storages.RDBStorage(
            engine_url(url), engine_kwargs=engine_kwargs, heartbeat_interval=int(heartbeat),
            grace_period=int(GRACE_FACTOR * heartbeat), **{callback_name: _retry_callback()},
        )

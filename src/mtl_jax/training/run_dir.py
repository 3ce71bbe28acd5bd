"""The run directory: its saved config decides whether a run may start, resume or not.

``<run dir>/config.json`` holds the fully resolved config. Starting a run on a directory
whose saved config equals the new one resumes it; a different config is refused (nothing is
touched) unless ``overwrite`` is asked, which deletes the old run first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from mtl_jax.errors import ConfigError

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
LOCK_FILE = ".lock"


def lock_holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock now (None if nobody); only reads."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return file.read().strip() or "another process"
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


def locked_error(run_dir: Path, holder: str) -> ConfigError:
    return ConfigError(
        f"--workdir {str(run_dir)!r} is being trained by {holder}; wait for it to finish, stop it,"
        " or pass another --workdir"
    )


class RunLock:
    """An exclusive ``flock`` on ``<run dir>/.lock`` while a process trains the run.

    A second ``mtl-jax train`` on the same directory is refused with one line naming the
    process that holds it. The kernel drops the lock when its holder dies (SIGKILL too), so a
    stale lock file never blocks a resume. Creates the run directory.
    """

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOCK_FILE
        self.file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise locked_error(run_dir, holder) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()} on {os.uname().nodename}\n")
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def config_differences(saved: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    keys = sorted(set(saved) | set(new))
    differences = []
    for key in keys:
        a, b = saved.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix}{key}")
    return differences


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as JSON would give it back (tuples become lists)."""
    return json.loads(json.dumps(config))


def read_saved_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is unreadable ({error}); pass --overwrite to start afresh or use another --workdir") from error


def completed(saved: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """A saved config with the defaults of keys added since it was written."""
    from mtl_jax.config import RunConfig  # noqa: PLC0415

    try:
        return RunConfig.from_dict(saved, num_devices=1).to_dict()
    except ConfigError as error:
        raise ConfigError(
            f"--workdir {str(run_dir)!r} holds a {CONFIG_FILE} this version cannot read ({error});"
            " use another --workdir, or pass --overwrite to delete that run"
        ) from error


def check_run_dir(run_dir: Path, config: Mapping[str, Any], overwrite: bool) -> bool:
    """Whether ``run_dir`` holds this config already (resume). Raises ConfigError for a
    different config, or a non-empty directory without one, unless ``overwrite`` (which
    means: start afresh); never writes."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--workdir {str(run_dir)!r} is a file; pass a directory")
    holder = lock_holder(run_dir) if run_dir.is_dir() else None
    if holder is not None:
        raise locked_error(run_dir, holder)
    if overwrite:
        return False
    saved = read_saved_config(run_dir) if run_dir.is_dir() else None
    if saved is None:
        if run_dir.is_dir() and any(entry.name != LOCK_FILE for entry in run_dir.iterdir()):
            raise ConfigError(
                f"--workdir {str(run_dir)!r} is not empty and holds no {CONFIG_FILE}; use an empty or new"
                " directory, or pass --overwrite to delete its contents"
            )
        return False
    differences = config_differences(completed(saved, run_dir), normalise(config))
    if differences:
        raise ConfigError(
            f"--workdir {str(run_dir)!r} holds a run with a different config (differs at"
            f" {', '.join(differences[:5])}); use another --workdir, or pass --overwrite to delete it"
        )
    return True


def prepare_run_dir(run_dir: Path, config: Mapping[str, Any], overwrite: bool, resume: bool) -> None:
    """Create ``run_dir`` (emptied first when overwriting) and save the config."""
    if overwrite and not resume and run_dir.is_dir():
        for entry in run_dir.iterdir():  # all but the lock this process holds
            if entry.name == LOCK_FILE:
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(normalise(config), indent=2) + "\n", encoding="utf-8")

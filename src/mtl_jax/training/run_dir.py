"""The run directory: its saved config decides whether a run may start, resume or not.

``<run dir>/config.json`` holds the fully resolved config. Starting a run on a directory
whose saved config equals the new one resumes it; a different config is refused (nothing is
touched) unless ``overwrite`` is asked, which deletes the old run first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

from mtl_jax.errors import ConfigError

CONFIG_FILE = "config.json"


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


def check_run_dir(run_dir: Path, config: Mapping[str, Any], overwrite: bool) -> bool:
    """Whether ``run_dir`` holds this config already (resume). Raises ConfigError for a
    different config, or a non-empty directory without one, unless ``overwrite`` (which
    means: start afresh); never writes."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--workdir {str(run_dir)!r} is a file; pass a directory")
    if overwrite:
        return False
    saved = read_saved_config(run_dir) if run_dir.is_dir() else None
    if saved is None:
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise ConfigError(
                f"--workdir {str(run_dir)!r} is not empty and holds no {CONFIG_FILE}; use an empty or new"
                " directory, or pass --overwrite to delete its contents"
            )
        return False
    differences = config_differences(saved, normalise(config))
    if differences:
        raise ConfigError(
            f"--workdir {str(run_dir)!r} holds a run with a different config (differs at"
            f" {', '.join(differences[:5])}); use another --workdir, or pass --overwrite to delete it"
        )
    return True


def prepare_run_dir(run_dir: Path, config: Mapping[str, Any], overwrite: bool, resume: bool) -> None:
    """Create ``run_dir`` (emptied first when overwriting) and save the config."""
    if overwrite and not resume and run_dir.is_dir():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(normalise(config), indent=2) + "\n", encoding="utf-8")

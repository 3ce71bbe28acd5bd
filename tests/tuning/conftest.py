"""Worker processes started by a sweep run in this process must import the tests' stand-in
objective (``tests.tuning.fake_objective``) whatever the current directory is."""

from __future__ import annotations

import os

import pytest

from tests.tuning.helpers import REPO


@pytest.fixture(autouse=True)
def repo_on_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])))

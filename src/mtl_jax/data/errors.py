"""The one exception type raised for bad or missing dataset sources and prepared data."""

from __future__ import annotations


class DataError(ValueError):
    """The dataset's source data is missing or malformed; the message names the fix."""

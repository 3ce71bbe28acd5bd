"""The bad-input exceptions. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config problem; the message names the key, the accepted values and the fix."""


class DataError(ValueError):
    """The dataset's source data is missing or malformed; the message names the fix."""

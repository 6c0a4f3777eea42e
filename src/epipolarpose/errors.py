"""Errors that reach the user as one clear message (the CLI prints them without a traceback)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a missing key, a wrong shape, NaNs, an empty video, degenerate geometry.

    The message must name the problem (which file, key, camera or pair, and why). The CLI prints
    ``error: <message>`` and exits with status 2.
    """

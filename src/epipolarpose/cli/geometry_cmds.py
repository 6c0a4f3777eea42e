"""CLI commands registered on ``app`` (see ``epipolarpose --help``)."""

from __future__ import annotations

from ._app import app  # noqa: F401

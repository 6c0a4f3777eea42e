"""The typer application and the error handling shared by every command.

Register commands with ``@app.command()`` (or on a sub-application made by :func:`sub_app`): the
decorator used here turns :class:`~epipolarpose.errors.InputError` raised anywhere inside a command
into ``error: <message>`` on stderr and exit status 2, with no traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from ..errors import InputError


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class _App(typer.Typer):
    """A Typer whose commands report :class:`InputError` as one clear message."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable], Callable]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(f: Callable) -> Callable:
            @functools.wraps(f)
            def wrapper(*a: Any, **k: Any) -> Any:
                try:
                    return f(*a, **k)
                except InputError as e:
                    fail(str(e))

            register(wrapper)
            return f

        return decorator


def _new_app(name: str, help: str) -> _App:
    """An application (or group) that shows its help without arguments and takes ``-h``."""
    return _App(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _new_app(
    "epipolarpose",
    "3D human pose from uncalibrated multi-view video, and a single-image 3D pose network "
    "learned from it without 3D ground truth (EpipolarPose, CVPR 2019, and beyond).",
)


@app.callback()
def _root() -> None:
    """3D human pose from uncalibrated multi-view video, and a single-image 3D pose network
    learned from it without 3D ground truth (EpipolarPose, CVPR 2019, and beyond)."""


def sub_app(name: str, help: str) -> typer.Typer:
    """A group of commands (``epipolarpose NAME ...``) with the same error handling."""
    sub = _new_app(name, help)
    app.add_typer(sub, name=name, help=help)
    return sub


def main() -> None:
    """Console entry point."""
    try:
        app()
    except InputError as e:  # raised outside a command (e.g. in a callback)
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

"""The typer application and the error handling shared by every command.

Register commands with ``@app.command()`` (or on a sub-application made by :func:`sub_app`): the
decorator used here turns :class:`~epipolarpose.errors.InputError` raised anywhere inside a command
into ``error: <message>`` on stderr and exit status 2, with no traceback.

It also checks every output path *before* the command computes anything
(:func:`~epipolarpose.io.check_output_path`): ``@app.command(outputs={"out": FILE, "report":
FOLDER})`` names a command's output options and what they must be; without ``outputs``, the
options named in :data:`OUTPUT_OPTIONS` are checked for what any output needs (no file where a
parent folder must be, a writable folder). Two outputs of one command may not be the same path.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import typer

from ..errors import InputError


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


FILE, FOLDER, ANY = "file", "folder", "any"
#: Option names that hold output paths in commands that do not declare ``outputs``.
OUTPUT_OPTIONS = ("out", "output", "rig_out", "gt_out", "summary_json", "save_error_model", "overlays")


def _option_names(f: Callable, names: Any) -> dict[str, str]:
    """How the user spells each parameter in ``names`` of command ``f`` (``--summary`` for
    ``summary_json``); parameters ``f`` does not have are left out."""
    out = {}
    for name, p in inspect.signature(f).parameters.items():
        if name not in names:
            continue
        decls = [d for d in getattr(p.default, "param_decls", ()) or () if d.startswith("--")]
        out[name] = max(decls, key=len) if decls else "--" + name.replace("_", "-")
    return out


def check_outputs(
    values: Mapping[str, Any], kinds: Mapping[str, str], spelled: Mapping[str, str] | None = None
) -> None:
    """:class:`InputError` unless every output path in ``values`` (parameter name -> path or None)
    can be written as ``kinds[name]`` says, and no two are the same path; ``spelled`` gives each
    parameter's option name for the messages."""
    from ..io import check_output_path

    seen: dict[str, str] = {}
    for name, kind in kinds.items():
        v = values.get(name)
        if v is None or not isinstance(v, (str, os.PathLike)):
            continue
        option = (spelled or {}).get(name) or "--" + name.replace("_", "-")
        check_output_path(v, kind, what=option)
        key = os.path.abspath(Path(v))
        if key in seen:
            raise InputError(f"{option} and {seen[key]} are the same path {v}")
        seen[key] = option


class _App(typer.Typer):
    """A Typer whose commands report :class:`InputError` as one clear message and check their
    output paths first (see the module docstring)."""

    def command(  # type: ignore[override]
        self, *args: Any, outputs: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Callable[[Callable], Callable]:
        register = super().command(*args, **kwargs)
        kinds = dict(outputs) if outputs is not None else dict.fromkeys(OUTPUT_OPTIONS, ANY)

        def decorator(f: Callable) -> Callable:
            spelled = _option_names(f, kinds)
            if outputs is not None and set(spelled) != set(kinds):
                raise TypeError(
                    f"{f.__name__}: outputs {sorted(set(kinds) - set(spelled))} are not parameters"
                )

            @functools.wraps(f)
            def wrapper(*a: Any, **k: Any) -> Any:
                try:
                    check_outputs(k, {n: kinds[n] for n in spelled}, spelled)
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

"""Command-line interface: ``epipolarpose --help`` lists every command.

Each area registers its commands in its own module below; heavy imports (torch, matplotlib,
video) happen inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

from . import (  # noqa: F401  (importing registers the commands)
    demo_cmds,
    eval_cmds,
    footage_cmds,
    geometry_cmds,
    learning_cmds,
    predict_cmds,
    refine_cmds,
    synth_cmds,
)
from ._app import app, main

__all__ = ["app", "main"]

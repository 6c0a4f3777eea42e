"""Command-line interface: ``epipolarpose --help`` lists every command.

Each area registers its commands in its own module below. A command parses its options, makes one
library call and prints. Command bodies import the library modules they use (and so torch,
matplotlib, OpenCV) lazily, inside the function: this is on purpose, so that ``epipolarpose --help``
stays fast; library modules themselves import at the top except heavy optional packages.
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

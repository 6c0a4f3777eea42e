"""Wall-clock timing of named stages (the ``timings_s`` of summaries and reports).

Usage: ``timer = Timer()``, then ``with timer("relative_poses"): ...`` around each stage;
``timer.seconds`` maps stage names to seconds (``{"relative_poses": 0.42}``) and
``timer.total()`` gives the seconds since the timer was made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Timer"]


class Timer:
    """Accumulates seconds per stage name; a stage entered twice adds up."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self.start

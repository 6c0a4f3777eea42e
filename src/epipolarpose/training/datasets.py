"""Human3.6M and MPI-INF-3DHP as multi-view training sources and test splits (filled below)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .footage import FootageAugment


@dataclass(frozen=True)
class DatasetOptions:
    """A dataset as training data (``train --dataset NAME --root DIR``)."""

    name: str
    root: Path
    every: int | None = None
    subjects: tuple[str, ...] = ()
    crop_cache: Path | None = None
    augment: FootageAugment = FootageAugment()

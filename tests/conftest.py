"""Shared fixtures. The project's data at hand lives in ``../shared`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EPIPOLARPOSE_SHARED", REPO.parent / "shared"))

# Keep every test process to one BLAS/torch thread: the suite runs with `-n 2` on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set EPIPOLARPOSE_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (the project's read-only data)."""
    return _require(SHARED)


@pytest.fixture(scope="session")
def rig_s9_path(shared: Path) -> Path:
    return _require(shared / "data/rigs/h36m_S9.json")


@pytest.fixture(scope="session")
def rig_s9(rig_s9_path: Path):
    from epipolarpose.camera import Rig

    return Rig.load(rig_s9_path)


@pytest.fixture(scope="session")
def cmu_bvh(shared: Path) -> Path:
    return _require(shared / "data/mocap/cmu/131_01.bvh")


@pytest.fixture(scope="session")
def bandai_bvh(shared: Path) -> Path:
    return _require(shared / "data/mocap/bandai1/dataset-1_walk_normal_001.bvh")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

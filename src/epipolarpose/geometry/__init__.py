"""Multi-view geometry, numpy/OpenCV, batched, one concept per module. The imports go one way,
from the leaves up:

* :mod:`.numeric`: ``skew``, ``project_to_so3`` (the leaf);
* :mod:`.dlt`: confidence-weighted linear triangulation;
* :mod:`.optimal_triangulation`: Hartley–Sturm two-view triangulation;
* :mod:`.epipolar`: essential/fundamental matrices, their decomposition, cheirality, Sampson
  distance, robust relative pose;
* :mod:`.alignment`: similarity (Procrustes) alignment of poses and rigs, rotation angles;
* :mod:`.triangulation`: robust multi-view triangulation, vector median, triangulation with a rig;
* :mod:`.bundle`: bundle adjustment with the points eliminated;
* :mod:`.rig_assembly`: absolute poses from pairwise ones (rotation averaging, translations, gauge);
* :mod:`.observations`: intrinsics and undistorted observations of a ``poses2d.npz``;
* :mod:`.calibration`: self-calibration of a static rig, in stages;
* :mod:`.per_frame`: the paper's per-frame recipe (a baseline).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

_F = TypeVar("_F", bound=Callable[..., Any])


def single_threaded(f: _F) -> _F:
    """Run ``f`` with BLAS/OpenMP limited to one thread. The geometry code works on large batches
    of tiny matrices, where BLAS threads only add overhead — on a loaded 2-core machine a 2-thread
    OpenBLAS made self-calibration ~15x slower (measured)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1):
            return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

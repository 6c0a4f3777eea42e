"""Multi-view geometry: epipolar geometry (:mod:`.epipolar`), triangulation (:mod:`.triangulation`),
bundle adjustment (:mod:`.bundle`), self-calibration (:mod:`.calibration`) and alignment
(:mod:`.alignment`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def single_threaded(f: _F) -> _F:
    """Run ``f`` with BLAS/OpenMP limited to one thread. The geometry code works on large batches
    of tiny matrices, where BLAS threads only add overhead — on a loaded 2-core machine a 2-thread
    OpenBLAS made self-calibration ~15x slower (measured)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

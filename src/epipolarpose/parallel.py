"""Threads over independent pieces of batched numpy/OpenCV work (chunks of frames, cameras).

numpy's array arithmetic and OpenCV's functions release the GIL, so a few threads use the
cores a process has without copying arrays to other processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import numpy as np
from tqdm import tqdm

__all__ = ["CHUNK", "available_cores", "map_chunks", "thread_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_map(
    fn: Callable[[_T], _R], items: Iterable[_T], workers: int = 0, progress: str | None = None
) -> list[_R]:
    """``[fn(i) for i in items]``, on up to ``workers`` threads (0: one per available core).
    Results keep the order of ``items``; the first exception is raised. ``progress``: the
    description of a progress bar on stderr (none when ``None``)."""
    items = list(items)
    n = min(len(items), workers or available_cores())
    bar = partial(tqdm, total=len(items), desc=progress, leave=False, disable=progress is None)
    if n <= 1:
        return [fn(i) for i in bar(items)]
    with ThreadPoolExecutor(n) as pool:
        return list(bar(pool.map(fn, items)))


#: Leading-axis items per chunk of :func:`map_chunks` (temporaries of a few MB stay in the cache
#: and are reused from the heap; whole-array temporaries of 100+ MB cost page faults every time).
CHUNK = 8192


def map_chunks(
    fn: Callable[..., np.ndarray], *arrays: np.ndarray | None, chunk: int = CHUNK, workers: int = 0
) -> np.ndarray:
    """``fn(*arrays)`` computed on chunks of the arrays' leading axis, on threads, and concatenated.

    For functions that treat the items of the leading axis independently (poses, frames), the
    result equals ``fn(*arrays)``. ``None`` arrays are passed through as ``None``.
    """
    n = next(len(a) for a in arrays if a is not None)
    if n <= chunk:
        return fn(*arrays)
    parts = thread_map(
        lambda s: fn(*(a if a is None else a[s : s + chunk] for a in arrays)), range(0, n, chunk), workers
    )
    return np.concatenate(parts)

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

from tqdm import tqdm

__all__ = ["available_cores", "thread_map"]

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

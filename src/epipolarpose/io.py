"""Atomic file writing: outputs appear complete or not at all.

Every writer in epipolarpose goes through :func:`atomic_path`: it writes to a temporary file in
the destination's folder and renames it over the destination only when writing succeeded.
:func:`atomic_folder` does the same for a folder of files (a report). Both give the result the
permissions an ordinary ``open(path, "w")`` / ``mkdir`` would: the user's umask applied to 0666
(files) or 0777 (folders), or the mode of the file being replaced — not the 0600/0700 of the
temporary names.

:func:`check_output_path` tells, before any computation, whether an output path can be written
(the CLI runs it on every command's output options).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _give_permissions(tmp: Path, dest: Path, folder: bool = False) -> None:
    """Give ``tmp`` (about to be renamed to ``dest``) the mode ``dest`` would get if created
    directly: the replaced file's mode, else the umask applied to 0666 (0777 for folders)."""
    try:
        mode = stat.S_IMODE(dest.stat().st_mode) if dest.exists() and not folder else None
    except OSError:
        mode = None
    if mode is None:
        mode = (0o777 if folder else 0o666) & ~current_umask()
    os.chmod(tmp, mode)


def check_output_path(path: str | os.PathLike, kind: str = "any", what: str = "output") -> Path:
    """:class:`InputError` unless ``path`` can be written as ``kind`` (``"file"``, ``"folder"`` or
    ``"any"``), checked before a command computes anything: an existing folder where a file is
    expected (or the reverse), a file where a parent folder must be, or a folder that cannot be
    written. Creates nothing."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise InputError(f"{what} {path} is a folder, expected a file path")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, expected a folder")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{what} {path}: {parent} is a file, not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: the folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    ``suffix`` defaults to the destination's own suffix (some writers, e.g. ``np.savez``, append
    an extension when the name lacks it).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.",
            suffix=suffix if suffix is not None else path.suffix,
            dir=path.parent,
        )
    except OSError as e:
        raise InputError(f"{path}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _give_permissions(tmp_path, path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; if the block succeeds it replaces ``path`` (an
    existing folder there is moved aside, then deleted), otherwise it is deleted."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        raise InputError(f"{path}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        _give_permissions(tmp, path, folder=True)
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, trash / "old")
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: Arrays whose first MiB deflates to more than this fraction of its size are stored uncompressed.
_STORE_ABOVE = 0.8


def _deflates_well(a: np.ndarray) -> bool:
    """Whether compressing ``a`` is worth its time: noisy float arrays (detections, poses) shrink
    by a fifth at most and cost most of a large ``save``; integers, flags and names shrink a lot."""
    if a.dtype.kind not in "fc" or a.nbytes < (1 << 20):
        return True
    sample = np.ascontiguousarray(a).reshape(-1).view(np.uint8)[: 1 << 20].tobytes()
    return len(zlib.compress(sample, 1)) < _STORE_ABOVE * len(sample)


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """An ``.npz`` (``np.load`` reads it) written atomically: arrays that compress well are
    deflated (level 1), noisy float arrays stored — ``np.savez_compressed``'s level 6 on them
    took most of the time of writing 100k frames for a fifth of their size."""
    with atomic_path(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True
        ) as zf:
            for key, value in arrays.items():
                a = np.asanyarray(value)
                member: str | zipfile.ZipInfo = f"{key}.npy"
                if not _deflates_well(a):
                    member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    member.compress_type = zipfile.ZIP_STORED
                with zf.open(member, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, a, allow_pickle=True)


def save_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> None:
    """JSON written atomically (numpy scalars and arrays are converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, default=json_default) + "\n")


def save_text(path: str | os.PathLike, text: str) -> None:
    """Text written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_together(outputs: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write several files so that either all appear or none: each ``write(tmp)`` goes to a
    temporary file next to its destination, and the renames happen only after every write
    succeeded."""
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p, suffix=".tmp")) for p, _ in outputs]
        for (_, write), tmp in zip(outputs, tmps):
            write(tmp)

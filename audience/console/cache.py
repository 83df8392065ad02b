"""Values the console computes once and keeps: per run folder (a run's files never change)
and per project file version (its stamp: modification time, size and inode).

One computation per key at a time: a second request for a value being computed waits for it
instead of computing it again (a lazy panel asked twice, a page reloaded), which on two cores
would double the wait of both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audience.runs import Run

CACHE_ITEMS = 256

_cache: dict[tuple, Any] = {}
_lock = threading.Lock()
_computing: dict[tuple, threading.Lock] = {}


def _cached(key: tuple, compute: Callable[[], Any]) -> Any:
    with _lock:
        if key in _cache:
            return _cache[key]
        flight = _computing.setdefault(key, threading.Lock())
    with flight:
        with _lock:
            if key in _cache:  # computed by the request this one waited for
                return _cache[key]
        try:
            value = compute()
        except BaseException:
            with _lock:
                _computing.pop(key, None)
            raise
        with _lock:
            if len(_cache) >= CACHE_ITEMS:
                _cache.clear()
            _cache[key] = value
            _computing.pop(key, None)
        return value


def run_cached(run: Run, key: tuple, compute: Callable[[], Any]) -> Any:
    """A value that depends only on a run's files: computed once per run folder. Nothing goes
    stale; the cache is cleared when it is full."""
    return _cached(("run", str(run.path), *key), compute)


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is edited: edits replace the file (os.replace), so the inode
    changes even within one tick of the modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def file_cached(path: Path, key: tuple, compute: Callable[[], Any]) -> Any:
    """A value computed from a file, computed again when the file changes. (A value of an
    older version stays until the cache is full: harmless, and it keeps this simple.)"""
    return _cached(("file", str(path), file_stamp(path), *key), compute)


def forget(which: Callable[[tuple], bool]) -> int:
    """Drop the values whose key `which` accepts (so a benchmark times a computation again);
    how many were dropped."""
    with _lock:
        keys = [k for k in _cache if which(k)]
        for k in keys:
            del _cache[k]
    return len(keys)

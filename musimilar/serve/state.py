"""What the server holds between requests: the library, catalog connections per thread, the map, the upload rules.

The server only reads the home. Recommendations go through the library façade, whose `ready()` re-opens the
model, embeddings and index by itself when a `convert`/`embed`/`index` job replaces them on disk; the catalog is
read through read-only SQLite connections (WAL: readers never wait for a writer); the map layout is cached in
memory under the key of the embeddings it was computed from, and recomputed when that key changes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from musimilar.browse import open_readonly
from musimilar.errors import MusimilarError

DEFAULT_UPLOAD_LIMIT_BYTES = 64 * 1024 * 1024  # a 10-minute lossless track fits; a video does not
PLAYABLE_SUFFIXES = {".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".m4a", ".aac", ".webm", ".mp4"}
UPLOAD_SUFFIXES = PLAYABLE_SUFFIXES | {".aif", ".aiff", ".wv"}
# Threads that each hold an opened library: searches release the GIL in numpy and Annoy, so a few run at once.
DEFAULT_LIBRARY_WORKERS = min(4, os.cpu_count() or 1)

T = TypeVar("T")


@dataclass(frozen=True)
class ServeOptions:
    """How the server was asked to run."""

    host: str = "127.0.0.1"
    port: int = 8765
    upload_limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES
    library_workers: int = DEFAULT_LIBRARY_WORKERS
    workers: int = 1  # server processes (`--workers`), each with its own event loop and library_workers threads


class ServerState:
    """Shared by every request; safe to use from the worker threads FastAPI runs endpoints on."""

    def __init__(self, open_library: Callable[[], Any], options: ServeOptions, library: Any | None = None) -> None:
        """`library`: one already opened (`musimilar serve` opens one at start to check it): quick jobs use it."""
        self.options = options
        self.home_root: Path = Path(open_library().home.root)
        self._open_library = open_library
        self._local = threading.local()
        # Each worker thread opens the library for itself: its SQLite connection and search structures then stay
        # on one thread, and a reload after `embed` happens per worker, under no lock the other workers wait on.
        self._workers = ThreadPoolExecutor(options.library_workers, thread_name_prefix="musimilar-library")
        self._loop: Any | None = library  # the library quick jobs use on the event loop's thread
        self._reopening = threading.Lock()
        self._map_lock = threading.Lock()
        self._maps: dict[str, tuple[str, bytes]] = {}  # method -> (layout key, JSON payload)
        self._upload_dir = tempfile.TemporaryDirectory(prefix="musimilar-upload-")  # mode 0700: private
        self.upload_dir = Path(self._upload_dir.name)

    def catalog(self) -> sqlite3.Connection:
        """This thread's read-only catalog connection."""
        connection = getattr(self._local, "catalog", None)
        if connection is None:
            connection = open_readonly(self.home_root / "catalog.sqlite")
            self._local.catalog = connection
        return connection

    async def call(self, job: Callable[[Any], T], quick: bool = False) -> T:
        """`job(library)` on a library worker thread (the request's event loop goes on meanwhile).

        A `quick` job (a lookup in the neighbour lists: a fraction of a millisecond) runs on the event loop itself
        while the loop's own library is open and current: the hop to a worker and back, and the worker's fight for
        the GIL with the loop, would cost more than the job. When that library is missing or stale, the job goes to
        a worker and a worker re-opens the loop's library meanwhile, so a reload never stalls the loop.
        """
        if quick and (library := self._loop) is not None:
            with library.checked_current() as current:
                if current:
                    return job(library)
        if quick and not self._reopening.locked():
            self._workers.submit(self._reopen_loop_library)
        return await asyncio.wrap_future(self._workers.submit(self._run, job))

    def _reopen_loop_library(self) -> None:
        if not self._reopening.acquire(blocking=False):
            return
        try:
            library = self._open_library()
            library.ready()
            self._loop = library  # the old one is dropped: the loop holds it only while a job runs, on its thread
        except MusimilarError:
            pass  # not ready (no embeddings yet): the jobs go to the workers, which say so
        finally:
            self._reopening.release()

    def _run(self, job: Callable[[Any], T]) -> T:
        library = getattr(self._local, "library", None)
        if library is None:
            library = self._local.library = self._open_library()
        return job(library)

    def in_background(self, job: Callable[[], Any]) -> None:
        """Run `job()` on a library worker; nobody waits for it."""
        self._workers.submit(job)

    def cached_map(self, method: str, key: str) -> bytes | None:
        with self._map_lock:
            stored = self._maps.get(method)
        return stored[1] if stored and stored[0] == key else None

    def store_map(self, method: str, key: str, payload: bytes) -> None:
        with self._map_lock:
            self._maps[method] = (key, payload)

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None:
            self._loop.close()
        self._upload_dir.cleanup()

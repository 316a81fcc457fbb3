"""The library home: one directory holding all state of one music library, and atomic file writes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from musimilar.errors import DiskFullError, HomeBusyError, HomeReadOnlyError, MusimilarError

HOME_ENV = "MUSIMILAR_HOME"
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
REWRITE_MINIMUM_BYTES = 64 << 20  # a model, embeddings or index rewritten beside the old one needs at least this
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL from Python 3.11 on


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The platform's user data directory for musimilar."""
    environ = os.environ if environ is None else environ
    if sys.platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "musimilar"


def resolve_home(option: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """--home DIR, else $MUSIMILAR_HOME, else the user data directory."""
    environ = os.environ if environ is None else environ
    if option is not None:
        return option.expanduser().resolve()
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV]).expanduser().resolve()
    return default_home(environ)


@dataclass(frozen=True)
class Home:
    """Where one library's files live."""

    root: Path

    @classmethod
    def open(cls, root: Path, create: bool = True) -> Home:
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise MusimilarError(f"{root}: cannot create the library home: {error.strerror}") from None
        elif not root.is_dir():
            raise MusimilarError(f"{root}: no library home here (run `musimilar convert` or `musimilar train` first)")
        return cls(root)

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def current_model_path(self) -> Path:
        return self.models_dir / "current.pt"

    @property
    def training_dir(self) -> Path:
        """Resume state of the training run in progress (kept apart from the shipped model)."""
        return self.root / "training"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def metrics_log(self) -> Path:
        return self.root / "training" / "metrics.jsonl"

    @contextlib.contextmanager
    def exclusive(self, job: str, scope: str | None = None) -> Iterator[None]:
        """Hold the home's write lock for the duration of a job; fail at once when another process holds it, or
        when the home is read-only. A full disk inside the job becomes a DiskFullError naming the home.

        A `scope` names a lock of its own, for jobs that write apart from the rest (one shard of an embedding).
        """
        lock_path = self.root / (f".lock-{scope}" if scope else ".lock")
        try:
            handle = open(lock_path, "a+")
        except OSError as error:
            if error.errno in READ_ONLY_ERRNOS:
                raise HomeReadOnlyError(self.root, error.strerror or str(error)) from None
            raise
        with handle, self.reporting_full_disk():
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HomeBusyError(f"{self.root}: home is busy ({holder}); try again when it has finished") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{job}, pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def reporting_full_disk(self) -> Iterator[None]:
        """Turn 'no space left on device' (from a file or from SQLite) into one DiskFullError naming the home."""
        try:
            yield
        except (OSError, sqlite3.Error) as error:
            if not is_disk_full(error):
                raise
            raise DiskFullError(self.root, free_bytes(self.root), self.rewrite_bytes()) from None

    def rewrite_bytes(self) -> int:
        """What rewriting the model, embeddings and index needs: new files are written beside the old ones."""
        sizes = (
            entry.stat().st_size
            for folder in (self.models_dir, self.embeddings_dir, self.index_dir)
            if folder.is_dir()
            for entry in folder.rglob("*")
            if entry.is_file()
        )
        return max(REWRITE_MINIMUM_BYTES, sum(sizes))


def is_disk_full(error: BaseException) -> bool:
    """Whether an error says the disk (or the user's quota) is full."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(error)
    return False


def free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`, else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

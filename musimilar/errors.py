"""Typed errors: each carries a one-line message and the exit code the CLI returns for it."""

from __future__ import annotations

from pathlib import Path

# Exit codes are part of the command-line contract (documented in docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1  # the command could not do its job
EXIT_USAGE = 2  # bad flags or settings
EXIT_PARTIAL = 3  # the job was done, but some input files failed (they are recorded and skipped)
EXIT_BUSY = 4  # another process holds the library home
EXIT_NOT_READY = 5  # a prerequisite is missing: no model, no embeddings, stale index...
EXIT_UNREACHABLE = 6  # a music server or player could not be reached, or dropped the connection
EXIT_AUTH = 7  # a music server refused the user name or password
EXIT_READ_ONLY = 8  # a command that writes was given a home it cannot write to
EXIT_NO_SPACE = 9  # the disk holding the home is full; the work done so far is kept
EXIT_INTERRUPTED = 130  # Ctrl-C; work done so far is saved


class MusimilarError(Exception):
    """Base of every error the CLI turns into one line on stderr."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SettingsError(MusimilarError):
    exit_code = EXIT_USAGE


class HomeBusyError(MusimilarError):
    exit_code = EXIT_BUSY


class HomeReadOnlyError(MusimilarError):
    exit_code = EXIT_READ_ONLY

    def __init__(self, root: Path | str, cause: str) -> None:
        super().__init__(
            f"{root}: home is read-only ({cause}); commands that only read (info, recommend, evaluate)"
            " work, the others need a writable home"
        )


class DiskFullError(MusimilarError):
    """The disk holding the home filled up. Everything committed so far stays; a rerun continues."""

    exit_code = EXIT_NO_SPACE

    def __init__(self, root: Path | str, free_bytes: int, needed_bytes: int) -> None:
        self.free_bytes, self.needed_bytes = free_bytes, needed_bytes
        super().__init__(
            f"{root}: no space left on the device ({_mebibytes(free_bytes)} free, about {_mebibytes(needed_bytes)}"
            " needed); the work done so far is kept: free some space and run the command again"
        )


def _mebibytes(count: int) -> str:
    return f"{count / (1 << 20):,.0f} MiB" if count >= 1 << 20 else f"{count / 1024:,.0f} KiB"


class NotReadyError(MusimilarError):
    """Something a command needs is missing or out of date (a model, embeddings, an index)."""

    exit_code = EXIT_NOT_READY


class DecodeError(MusimilarError):
    """An audio file could not be turned into samples. `kind` is one of the KINDS below."""

    KINDS = ("missing", "unreadable", "unsupported", "empty", "too short", "truncated", "silent")

    def __init__(self, path: Path | str, kind: str, cause: str) -> None:
        assert kind in self.KINDS, kind
        self.path = str(path)
        self.kind = kind
        self.cause = cause
        super().__init__(f"{self.path}: {kind}: {cause}")


class CheckpointError(MusimilarError):
    def __init__(self, path: Path | str, cause: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: not a usable musimilar model: {cause}")


class UnreachableError(MusimilarError):
    """A music server or player (Subsonic API, MPD) cannot be reached or dropped the connection."""

    exit_code = EXIT_UNREACHABLE


class AuthenticationError(MusimilarError):
    """A music server refused the credentials."""

    exit_code = EXIT_AUTH

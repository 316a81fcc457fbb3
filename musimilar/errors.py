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

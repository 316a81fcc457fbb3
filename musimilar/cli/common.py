"""What every command shares: the error translation, reading sources, and opening the library façade."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from musimilar.errors import EXIT_INTERRUPTED, MusimilarError

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(function: F) -> F:
    """Translate typed errors into one stderr line and their exit code; Ctrl-C into a message and 130."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from musimilar.cli import render

        try:
            return function(*args, **kwargs)
        except MusimilarError as error:
            render.errors().print(f"error: {error.message}", markup=False, style="red")
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            render.errors().print(
                "interrupted: work done so far is saved; run the command again to continue", markup=False
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def read_sources(sources: list[Path] | None) -> list[Path]:
    """Command-line paths, with '-' replaced by one path per stdin line."""
    found: list[Path] = []
    for source in sources or []:
        if str(source) == "-":
            found.extend(Path(line.strip()) for line in sys.stdin if line.strip())
        else:
            found.append(source)
    return found


def open_library(
    home: Path | None, config: Path | None = None, flags: dict[str, Any] | None = None, create: bool = True
) -> Any:
    """The library façade for --home and --config, with the command's flags laid over the settings."""
    from musimilar.library import Library

    return Library.open(home, create=create, config=config, flags=flags)

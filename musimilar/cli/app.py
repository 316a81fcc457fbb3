"""The `musimilar` command: a Typer app whose commands live in the modules imported below."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from musimilar import __version__
from musimilar.cli.options import ThreadsOption
from musimilar.errors import EXIT_INTERRUPTED, MusimilarError

app = typer.Typer(
    name="musimilar",
    help="Learn what your music library sounds like, with no labels, and find the songs that sound alike.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")

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


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"musimilar {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    threads: ThreadsOption = None,
) -> None:
    """Learn what your music library sounds like, with no labels, and find the songs that sound alike."""
    if threads is not None:  # the environment layer of the settings, inherited by worker and torchrun processes
        os.environ["MUSIMILAR_THREADS"] = str(threads)


def read_sources(sources: list[Path] | None) -> list[Path]:
    """Command-line paths, with '-' replaced by one path per stdin line."""
    found: list[Path] = []
    for source in sources or []:
        if str(source) == "-":
            found.extend(Path(line.strip()) for line in sys.stdin if line.strip())
        else:
            found.append(source)
    return found


def main() -> None:
    app()


def _register_commands() -> None:
    """Each command module adds its commands to `app` when imported (they import nothing heavy at the top)."""
    from musimilar.cli import demo, evaluation, library, search, training  # noqa: F401


_register_commands()

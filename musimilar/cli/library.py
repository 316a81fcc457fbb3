"""Commands about the library itself: convert, config show, info."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library, read_sources
from musimilar.cli.options import (
    ConfigOption,
    FormatOption,
    HomeOption,
    ReportFormat,
    SourcesArgument,
    WorkersOption,
)
from musimilar.errors import EXIT_PARTIAL

MaxSecondsOption = Annotated[
    Optional[float],
    typer.Option(
        "--max-seconds", help="Seconds kept per track (its middle part); caps the cache size.", show_default=False
    ),
]
LabelsFileOption = Annotated[
    Optional[Path],
    typer.Option(
        "--labels",
        help="Then store this label file's labels (CSV: path,genre,...; see `labels import`).",
        show_default=False,
    ),
]


@handles_errors
def convert(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    workers: WorkersOption = None,
    max_seconds: MaxSecondsOption = None,
    labels: LabelsFileOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Scan folders (recursively) and cache the log-mel spectrogram of every new or changed audio file.

    Exit code 0 when every file converted, 3 when some failed (they are recorded and skipped).
    """
    from musimilar.labels import read_label_csv
    from musimilar.summaries import describe_convert

    paths = read_sources(sources)
    if not paths:
        raise typer.BadParameter("give at least one folder or file (or '-' to read paths from stdin)")
    library = open_library(home, config, {"audio.max_seconds": max_seconds})
    mapping = read_label_csv(labels) if labels else None  # a bad label file fails before a long convert
    with render.stage_progress() as progress:
        report = library.convert(paths, workers, progress)
    if report.cache_reset:
        render.warning(report.cache_reset)
    render.message(describe_convert(report))
    if mapping is not None:
        from musimilar.cli.labelling import report_import

        report_import(library, labels, mapping)
    if output == ReportFormat.json:
        render.print_json(report.as_dict())
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


@handles_errors
def config_show(
    home: HomeOption = None, config: ConfigOption = None, output: FormatOption = ReportFormat.table
) -> None:
    """Print the effective settings (defaults < TOML file < MUSIMILAR_* environment)."""
    from musimilar.home import resolve_home
    from musimilar.settings import load_settings, settings_as_toml

    settings = load_settings(config, resolve_home(home))
    if output == ReportFormat.json:
        render.print_json(settings.model_dump())
    else:
        typer.echo(settings_as_toml(settings), nl=False)


@handles_errors
def info(
    home: HomeOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="List every failed file with its error.")] = False,
    output: FormatOption = ReportFormat.table,
) -> None:
    """What the home holds: tracks, cache, model, embeddings, index, and whether each is up to date."""
    status = open_library(home, create=False).status()
    if output == ReportFormat.json:
        render.print_json(status)
        return
    _print_status(status)
    if failed:
        for item in status["tracks"]["failures"]:
            typer.echo(f"{item['path']}: {item['error']}")


def _print_status(status: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"musimilar home {status['home']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("state")
    for name, text in status["summary"].items():
        table.add_row(name, text)
    render.data().print(table)

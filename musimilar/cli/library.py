"""Commands about the library itself: convert, config show, info; and the convert step other commands share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.app import app, config_app, handles_errors, read_sources
from musimilar.cli.options import (
    ConfigOption,
    FormatOption,
    HomeOption,
    ReportFormat,
    SourcesArgument,
    WorkersOption,
)
from musimilar.errors import EXIT_PARTIAL

FAILURES_SHOWN = 5

MaxSecondsOption = Annotated[
    Optional[float],
    typer.Option(
        "--max-seconds", help="Seconds kept per track (its middle part); caps the cache size.", show_default=False
    ),
]


def open_home(home: Path | None, create: bool = True) -> Any:
    from musimilar.home import Home, resolve_home

    return Home.open(resolve_home(home), create=create)


def load(config: Path | None, home: Any, flags: dict[str, Any] | None = None) -> Any:
    from musimilar.settings import load_settings
    from musimilar.threads import apply_thread_limit

    settings = load_settings(config, home.root if home is not None else None, flags)
    apply_thread_limit(settings.system.threads)
    return settings


def convert_sources(home: Any, sources: list[Path], settings: Any, workers: int | None) -> Any:
    """Run the incremental convert with a progress bar and summarise it on stderr; returns the report."""
    from musimilar.convert import convert as convert_library

    with render.progress_bar("convert", "files") as update:
        report = convert_library(home, sources, settings, workers, progress=lambda d, t, p: update(d, t))
    if report.cache_reset:
        render.warning(report.cache_reset)
    render.message(
        f"convert: {report.scanned} files scanned, {report.new} new, {report.changed} changed, "
        f"{report.missing} missing, {report.converted} converted, {len(report.failed)} failed "
        f"in {report.seconds:.1f} s; cache {render.human_bytes(report.cache_bytes)}"
    )
    for path, error in report.failed[:FAILURES_SHOWN]:
        render.message(f"  failed: {path}: {error}")
    if len(report.failed) > FAILURES_SHOWN:
        render.message(f"  ... and {len(report.failed) - FAILURES_SHOWN} more (see `musimilar info --failed`)")
    return report


@app.command()
@handles_errors
def convert(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    workers: WorkersOption = None,
    max_seconds: MaxSecondsOption = None,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            "--labels",
            help="Then store this label file's labels (CSV: path,genre,...; see `labels import`).",
            show_default=False,
        ),
    ] = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Scan folders (recursively) and cache the log-mel spectrogram of every new or changed audio file.

    Exit code 0 when every file converted, 3 when some failed (they are recorded and skipped).
    """
    paths = read_sources(sources)
    if not paths:
        raise typer.BadParameter("give at least one folder or file (or '-' to read paths from stdin)")
    library = open_home(home)
    settings = load(config, library, {"audio.max_seconds": max_seconds})
    from musimilar.labels import read_label_csv

    mapping = read_label_csv(labels) if labels else None  # a bad label file fails before a long convert
    with library.exclusive("convert"):
        report = convert_sources(library, paths, settings, workers)
        if mapping is not None:
            from musimilar.cli.evaluation import report_import

            report_import(library, labels, mapping)
    if output == ReportFormat.json:
        summary = dataclasses.asdict(report)
        summary["failed"] = [{"path": path, "error": error} for path, error in report.failed]
        render.print_json(summary)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


@config_app.command("show")
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


@app.command()
@handles_errors
def info(
    home: HomeOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="List every failed file with its error.")] = False,
    output: FormatOption = ReportFormat.table,
) -> None:
    """What the home holds: tracks, cache, model, embeddings, index, and whether each is up to date."""
    from musimilar.status import home_status

    status = home_status(open_home(home, create=False))
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

"""Commands that measure the model on the user's own labels: evaluate and classify."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library
from musimilar.cli.options import ConfigOption, DeviceOption, FormatOption, HomeOption, ReportFormat
from musimilar.errors import EXIT_PARTIAL

FIGURE_NAMES = {
    "precision_at_k": "label precision@{k}",
    "map": "mAP",
    "knn_accuracy": "kNN accuracy",
    "linear_probe_accuracy": "linear probe",
    "top1": "segment top-1",
    "top10": "segment top-10",
}

ByOption = Annotated[
    Optional[str],
    typer.Option(
        "--by",
        help="Label to judge by: genre, artist, album, folder, label or any label file column "
        "(default: label, else genre, else folder).",
        show_default=False,
    ),
]
KOption = Annotated[int, typer.Option("--k", "-k", min=1, help="Neighbours each track is judged on.")]


class ExcludeSame(str, Enum):
    album = "album"
    artist = "artist"


@handles_errors
def evaluate(
    home: HomeOption = None,
    config: ConfigOption = None,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            "--labels",
            help="Label file (CSV: path,genre,...) used for this evaluation only; `labels import` stores one.",
            show_default=False,
        ),
    ] = None,
    by: ByOption = None,
    k: KOption = 10,
    exclude_same: Annotated[
        Optional[ExcludeSame],
        typer.Option(help="Leave out each track's album (artist) mates from its neighbours.", show_default=False),
    ] = None,
    control: Annotated[bool, typer.Option("--control", help="Add the shuffled-label control.")] = False,
    sample: Annotated[
        Optional[int],
        typer.Option(min=0, help="Tracks in segment retrieval (default 500; 0: all).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe's split, the control and the sample.")] = 0,
    device: DeviceOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """How well the model's neighbours share your labels, beside a no-training baseline (docs/evaluation.md)."""
    library = open_library(home, config, {"embed.device": device}, create=False)
    same = exclude_same.value if exclude_same else None
    with render.stage_progress() as progress:
        report = library.evaluate(by, k, same, labels, seed, control, sample, progress)
    for text in report.warnings:
        render.warning(text)
    counts = list(report.labels.values())
    spread = f" ({min(counts)} to {max(counts)} tracks each)" if counts else ""
    render.message(
        f"evaluate: {report.tracks} tracks with a '{report.by}' label, {len(report.labels)} labels"
        f"{spread}; segment retrieval on {report.segment_tracks} tracks; {report.seconds:.1f} s"
    )
    if output == ReportFormat.json:
        render.print_json(report.as_dict())
    else:
        _print_evaluation(report)


def _print_evaluation(report: Any) -> None:
    from rich.table import Table

    title = f"model {report.model_fingerprint} by {report.by}, k={report.k}"
    if report.exclude_same:
        title += f", excluding the same {report.exclude_same}"
    table = Table(title=title, title_justify="left")
    columns = ["model", "baseline", "chance"] + (["control model", "control baseline"] if report.control else [])
    table.add_column("figure")
    for column in columns:
        table.add_column(column, justify="right")
    for key, name in FIGURE_NAMES.items():
        values = [report.model[key], report.baseline[key], report.chance[key]]
        if report.control:
            values += [report.control["model"].get(key), report.control["baseline"].get(key)]
        table.add_row(name.format(k=report.k), *(_figure(value) for value in values))
    render.data().print(table)
    if report.raw is not None:
        _print_post_processing(report)
    for space, figures in report.hubness.items():
        render.data().print(
            f"hubness ({space}): the most frequent neighbour is in {figures['top_hub_share']:.1%} of the top-"
            f"{report.k} lists; k-occurrence skewness {figures['k_occurrence_skewness']:.2f}"
        )


def _print_post_processing(report: Any) -> None:
    from rich.table import Table

    table = Table(title="with and without the retrieval post-processing (whitening, CSLS)", title_justify="left")
    for column in ("figure", "with", "without"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for key, name in FIGURE_NAMES.items():
        if key in report.raw:
            table.add_row(name.format(k=report.k), _figure(report.model[key]), _figure(report.raw[key]))
    render.data().print(table)


def _figure(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"  # value != value: nan


@handles_errors
def classify(
    queries: Annotated[
        list[str],
        typer.Argument(help="Audio files or track ids, each answered on its own; '-' reads one query per stdin line."),
    ],
    by: ByOption = None,
    k: KOption = 10,
    top: Annotated[int, typer.Option(min=1, help="Labels listed per query.")] = 3,
    vote: Annotated[
        bool, typer.Option("--vote", help="Ask the neighbours even when the model has a head for --by.")
    ] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
    device: DeviceOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """The likely labels of each query: a vote of its nearest labelled tracks, or the model's head (train --head).

    Exit code 3 when some of several queries failed (each failure is named on stderr).
    """
    if queries == ["-"]:
        queries = [line.strip() for line in sys.stdin if line.strip()]
    library = open_library(home, config, {"embed.device": device}, create=False)
    results = library.classify(queries, by, k, top, use_head=not vote, keep_going=len(queries) > 1)
    for result in results:
        if result.error:
            render.message(f"error: {result.error}")
    if output == ReportFormat.json:
        render.print_json([result.as_dict() for result in results])
    else:
        _print_classes(results)
    if any(result.error for result in results):
        raise typer.Exit(EXIT_PARTIAL)


def _print_classes(results: list[Any]) -> None:
    from rich.table import Table

    answered = [result for result in results if not result.error]
    if not answered:
        return
    table = Table(title=f"by {answered[0].by} ({answered[0].method})", title_justify="left")
    table.add_column("query")
    table.add_column("labels (score)")
    for result in answered:
        table.add_row(result.query, ", ".join(f"{label} {score:.2f}" for label, score in result.labels) or "-")
    render.data().print(table)

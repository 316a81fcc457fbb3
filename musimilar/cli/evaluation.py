"""Commands that measure the model on the user's own labels: evaluate, classify, labels import."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.app import app, handles_errors
from musimilar.cli.library import load, open_home
from musimilar.cli.options import ConfigOption, DeviceOption, FormatOption, HomeOption, ReportFormat
from musimilar.errors import EXIT_PARTIAL

labels_app = typer.Typer(
    help="Give tracks labels (genre, artist, album...) for evaluate and classify.", no_args_is_help=True
)
app.add_typer(labels_app, name="labels")

UNMATCHED_SHOWN = 5
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


@app.command()
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
    from musimilar.evaluate import evaluate as evaluate_home

    library = open_home(home, create=False)
    settings = load(config, library, {"embed.device": device})
    with render.progress_bar("evaluate", "crops") as update:
        report = evaluate_home(
            library,
            by,
            k,
            exclude_same.value if exclude_same else None,
            labels,
            seed,
            control,
            sample,
            settings.embed.device,
            progress=update,
        )
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


def _figure(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"  # value != value: nan


@app.command()
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
    from musimilar.classify import classify as classify_queries

    if queries == ["-"]:
        queries = [line.strip() for line in sys.stdin if line.strip()]
    library = open_home(home, create=False)
    settings = load(config, library, {"embed.device": device})
    results = classify_queries(
        library, queries, by, k, top, use_head=not vote, keep_going=len(queries) > 1, device_name=settings.embed.device
    )
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


@labels_app.command("import")
@handles_errors
def labels_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header: path and label columns (e.g. path,genre,artist); "
            "paths absolute or relative to the file's folder."
        ),
    ],
    home: HomeOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Store a label file's labels in the catalog (over the tags of the same name).

    Exit code 3 when some of the file's paths name no track of the catalog (convert them first).
    """
    from musimilar.labels import read_label_csv

    library = open_home(home, create=False)
    mapping = read_label_csv(file)
    with library.exclusive("labels import"):
        imported = report_import(library, file, mapping)
    if output == ReportFormat.json:
        render.print_json(imported.as_dict())
    if imported.unmatched:
        raise typer.Exit(EXIT_PARTIAL)


@labels_app.command("head")
@handles_errors
def labels_head(
    by: Annotated[str, typer.Argument(help="The label to classify by: genre, artist, album, folder, label...")],
    home: HomeOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Fit a classifier for a label on the stored embeddings and keep it in the model file, for `classify`.

    What `train --head` does after training, on the current labels, without training the model again.
    """
    library = open_home(home, create=False)
    with library.exclusive("labels head"):
        head = report_head(library, by)
    if output == ReportFormat.json:
        render.print_json(head)


def report_import(library: Any, file: Path, mapping: Any) -> Any:
    """Store a label file's labels (read with read_label_csv) and summarise on stderr; returns the LabelImport."""
    from musimilar.labels import import_labels

    imported = import_labels(library, mapping)
    render.message(
        f"labels: {imported.matched} of {imported.rows} rows of {file} matched a track; "
        f"columns {', '.join(imported.keys) or '(none set)'}"
    )
    for path in imported.unmatched[:UNMATCHED_SHOWN]:
        render.message(f"  no such track in the catalog: {path}")
    if len(imported.unmatched) > UNMATCHED_SHOWN:
        render.message(f"  ... and {len(imported.unmatched) - UNMATCHED_SHOWN} more")
    return imported


def report_head(library: Any, by: str) -> dict[str, Any]:
    """Fit and store the classifier head for `by` (train --head), with a summary line; returns its report."""
    from musimilar.classify import train_head

    head = train_head(library, by)
    render.message(
        f"head: a '{by}' classifier over {head['labels']} labels, fit on {head['tracks']} tracks "
        f"(training accuracy {head['training_accuracy']:.3f}), stored in {head['model']}"
    )
    return head

"""Commands that give tracks labels: labels import (a CSV file) and labels head (a classifier in the model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library
from musimilar.cli.options import FormatOption, HomeOption, ReportFormat
from musimilar.errors import EXIT_PARTIAL

UNMATCHED_SHOWN = 5


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

    library = open_library(home, create=False)
    imported = report_import(library, file, read_label_csv(file))
    if output == ReportFormat.json:
        render.print_json(imported.as_dict())
    if imported.unmatched:
        raise typer.Exit(EXIT_PARTIAL)


@handles_errors
def labels_head(
    by: Annotated[str, typer.Argument(help="The label to classify by: genre, artist, album, folder, label...")],
    home: HomeOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Fit a classifier for a label on the stored embeddings and keep it in the model file, for `classify`.

    What `train --head` does after training, on the current labels, without training the model again.
    """
    from musimilar.summaries import describe_head

    head = open_library(home, create=False).fit_head(by)
    render.message(describe_head(head))
    if output == ReportFormat.json:
        render.print_json(head)


def report_import(library: Any, file: Path, mapping: Any) -> Any:
    """Store a label file's labels (read with read_label_csv) and summarise on stderr; returns the LabelImport."""
    imported = library.import_labels(mapping)
    render.message(
        f"labels: {imported.matched} of {imported.rows} rows of {file} matched a track; "
        f"columns {', '.join(imported.keys) or '(none set)'}"
    )
    for path in imported.unmatched[:UNMATCHED_SHOWN]:
        render.message(f"  no such track in the catalog: {path}")
    if len(imported.unmatched) > UNMATCHED_SHOWN:
        render.message(f"  ... and {len(imported.unmatched) - UNMATCHED_SHOWN} more")
    return imported

"""Printing lists of tracks (recommend, and any command that answers with tracks): table, json, csv, m3u, xspf,
paths."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render


class ListFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    m3u = "m3u"
    xspf = "xspf"
    paths = "paths"


ListFormatOption = Annotated[
    ListFormat, typer.Option("--format", help="table, json, csv, m3u (extended M3U8), xspf or paths.")
]
ExcludeSameAlbumOption = Annotated[bool, typer.Option(help="Leave out the query's album.")]
MaxPerArtistOption = Annotated[Optional[int], typer.Option(min=1, help="At most N per artist.", show_default=False)]
MaxPerAlbumOption = Annotated[Optional[int], typer.Option(min=1, help="At most N per album.", show_default=False)]
CSV_FIELDS = ("rank", "track_id", "path", "similarity", "labels")


def diversity_of(exclude_same_album: bool, max_per_artist: int | None, max_per_album: int | None) -> Any:
    """The diversity rules of the options above."""
    from musimilar.recommend import Diversity

    return Diversity(exclude_same_album, max_per_artist, max_per_album)


def print_results(results: list[Any], output: ListFormat, title: str, relative_to: Path | None = None) -> None:
    """`relative_to`: the folder m3u and xspf paths are relative to (None: absolute paths)."""
    if output == ListFormat.json:
        render.print_json([r.as_dict() for r in results])
    elif output == ListFormat.csv:
        sys.stdout.write(_csv_rows(results, None, header=True))
    elif output in (ListFormat.m3u, ListFormat.xspf):
        sys.stdout.write(_playlist(output, results, relative_to, title))
    elif output == ListFormat.paths:
        sys.stdout.write("".join(f"{r.path}\n" for r in results))
    else:
        _print_table(results, title)


def print_batch(answers: list[dict[str, Any]], output: ListFormat, relative_to: Path | None = None) -> None:
    """Answers of a stdin batch: {"query", "results", "error"} each."""
    if output == ListFormat.json:
        render.print_json(
            [
                {"query": a["query"], "results": [r.as_dict() for r in a["results"]], "error": a["error"]}
                for a in answers
            ]
        )
    elif output == ListFormat.csv:
        sys.stdout.write("".join(_csv_rows(a["results"], a["query"], header=i == 0) for i, a in enumerate(answers)))
    elif output in (ListFormat.m3u, ListFormat.xspf):  # one playlist of every answer, in query order
        sys.stdout.write(_playlist(output, [r for a in answers for r in a["results"]], relative_to, None))
    else:
        for answer in answers:
            if output == ListFormat.paths:
                sys.stdout.write("".join(f"{r.path}\n" for r in answer["results"]))
            elif not answer["error"]:
                _print_table(answer["results"], answer["query"])


def _csv_rows(results: list[Any], query: str | None, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = (("query",) if query is not None else ()) + CSV_FIELDS
    if header:
        writer.writerow(fields)
    for r in results:
        row = [r.rank, r.track_id, r.path, f"{r.similarity:.6f}", json.dumps(r.labels, ensure_ascii=False)]
        writer.writerow(([query] if query is not None else []) + row)
    return buffer.getvalue()


def _playlist(output: ListFormat, results: list[Any], relative_to: Path | None, title: str | None) -> str:
    from musimilar.playlists import entries_for, playlist_text

    return playlist_text(output.value, entries_for(r.path for r in results), relative_to, title)


def _print_table(results: list[Any], title: str) -> None:
    from rich.table import Table

    table = Table(title=f"like {title}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("similarity", justify="right")
    table.add_column("track")
    table.add_column("label")
    for r in results:
        label = r.labels.get("genre") or r.labels.get("label") or r.labels.get("folder") or ""
        table.add_row(str(r.rank), f"{r.similarity:.3f}", r.path, label)
    render.data().print(table)

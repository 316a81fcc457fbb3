"""Printing lists of tracks (recommend, and any command that answers with tracks): table, json, csv, m3u, paths."""

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
    paths = "paths"


ListFormatOption = Annotated[ListFormat, typer.Option("--format", help="table, json, csv, m3u or paths.")]
ExcludeSameAlbumOption = Annotated[bool, typer.Option(help="Leave out the query's album.")]
MaxPerArtistOption = Annotated[Optional[int], typer.Option(min=1, help="At most N per artist.", show_default=False)]
MaxPerAlbumOption = Annotated[Optional[int], typer.Option(min=1, help="At most N per album.", show_default=False)]
CSV_FIELDS = ("rank", "track_id", "path", "similarity", "labels")


def diversity_of(exclude_same_album: bool, max_per_artist: int | None, max_per_album: int | None) -> Any:
    """The diversity rules of the options above."""
    from musimilar.recommend import Diversity

    return Diversity(exclude_same_album, max_per_artist, max_per_album)


def print_results(results: list[Any], output: ListFormat, title: str) -> None:
    if output == ListFormat.json:
        render.print_json([r.as_dict() for r in results])
    elif output == ListFormat.csv:
        sys.stdout.write(_csv_rows(results, None, header=True))
    elif output == ListFormat.m3u:
        sys.stdout.write("#EXTM3U\n" + _m3u_entries(results))
    elif output == ListFormat.paths:
        sys.stdout.write("".join(f"{r.path}\n" for r in results))
    else:
        _print_table(results, title)


def print_batch(answers: list[dict[str, Any]], output: ListFormat) -> None:
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
    elif output == ListFormat.m3u:
        sys.stdout.write("#EXTM3U\n" + "".join(f"# {a['query']}\n" + _m3u_entries(a["results"]) for a in answers))
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


def _m3u_entries(results: list[Any]) -> str:
    return "".join(f"#EXTINF:-1,{Path(r.path).stem}\n{r.path}\n" for r in results)


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

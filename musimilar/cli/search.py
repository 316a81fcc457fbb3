"""Commands that turn a trained model into answers: embed, index, recommend."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.app import app, handles_errors, read_sources
from musimilar.cli.library import convert_sources, load, open_home
from musimilar.cli.options import (
    ConfigOption,
    DeviceOption,
    FormatOption,
    HomeOption,
    ReportFormat,
    SourcesArgument,
    WorkersOption,
)
from musimilar.errors import EXIT_PARTIAL, MusimilarError


@app.command()
@handles_errors
def embed(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    model: Annotated[
        Optional[Path], typer.Option(help="Model file (default: the home's current model).", show_default=False)
    ] = None,
    shard: Annotated[
        Optional[str], typer.Option(help="Embed only slice I of N (I/N), for parallel jobs.", show_default=False)
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="The arguments are shard folders: merge them into the home's embeddings.")
    ] = False,
    device: DeviceOption = None,
    workers: WorkersOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Embed every track of the catalog (new or changed ones only) with the current model.

    Exit code 3 when some files failed (recorded and skipped).
    """
    from musimilar.embed import parse_shard

    library = open_home(home, create=bool(sources) and not merge)
    settings = load(config, library, {"embed.device": device})
    part = parse_shard(shard) if shard else None
    summary: dict[str, Any] = {}
    with library.exclusive(
        "merge" if merge else f"embed {shard or ''}".strip(), scope=f"shard-{part[0]}-of-{part[1]}" if part else None
    ):
        if merge:
            summary = _merge(library, read_sources(sources))
        else:
            paths = read_sources(sources)
            failed: list[Any] = []
            if paths:  # conversion writes the shared catalog and cache: a shard job takes the home's lock for it
                with library.exclusive("convert") if part else contextlib.nullcontext():
                    failed = convert_sources(library, paths, settings, workers).failed
            summary = embed_reporting(library, model, part, settings.embed.device)
            summary["failed"] = [{"path": p, "error": e} for p, e in failed] + summary["failed"]
    if output == ReportFormat.json:
        render.print_json(summary)
    if summary.get("failed"):
        raise typer.Exit(EXIT_PARTIAL)


def embed_reporting(library: Any, model: Path | None, shard: tuple[int, int] | None, device: str) -> dict[str, Any]:
    """Embed with a progress bar and a summary line; returns the report as a dict."""
    import dataclasses

    from musimilar.embed import embed_library

    with render.progress_bar("embed", "tracks") as update:
        report = embed_library(library, model, shard, device, progress=update)
    render.message(
        f"embed: {report.embedded} embedded, {report.reused} up to date, {report.removed} removed, "
        f"{len(report.failed)} failed in {report.seconds:.1f} s -> {report.directory}"
    )
    for path, error in report.failed[:5]:
        render.message(f"  failed: {path}: {error}")
    summary = dataclasses.asdict(report)
    summary["failed"] = [{"path": p, "error": e} for p, e in report.failed]
    return summary


def _merge(library: Any, folders: list[Path]) -> dict[str, Any]:
    from musimilar.embeddings import load_embeddings, merge_tables, save_embeddings

    if not folders:
        raise typer.BadParameter("--merge needs the shard folders to merge (HOME/embedding-shards/I-of-N)")
    tables = []
    for folder in folders:
        table = load_embeddings(folder.expanduser().resolve(), mmap=False)
        if table is None:
            raise MusimilarError(f"{folder}: no embeddings here")
        tables.append(table)
    existing = load_embeddings(library.embeddings_dir, mmap=False)
    if existing is not None and existing.model_fingerprint == tables[0].model_fingerprint:
        tables.insert(0, existing)
    merged = merge_tables(tables)
    save_embeddings(library.embeddings_dir, merged)
    render.message(f"embed: merged {len(folders)} shard folders: {len(merged)} tracks -> {library.embeddings_dir}")
    return {"merged": len(folders), "tracks": len(merged), "model_fingerprint": merged.model_fingerprint, "failed": []}


@app.command()
@handles_errors
def index(
    home: HomeOption = None,
    config: ConfigOption = None,
    trees: Annotated[
        Optional[int], typer.Option(help="Annoy trees: more is slower to build, better recall.", show_default=False)
    ] = None,
    metric: Annotated[Optional[str], typer.Option(help="Distance (angular: cosine).", show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Measure recall@10 against exact search.")] = False,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Build the Annoy index of the stored embeddings (atomically, with a JSON sidecar)."""
    library = open_home(home, create=False)
    settings = load(config, library, {"index.trees": trees, "index.metric": metric})
    if check:
        summary = _check(library, settings)
    else:
        with library.exclusive("index"):
            summary = build_index_reporting(library, settings)
    if output == ReportFormat.json:
        render.print_json(summary)


def build_index_reporting(library: Any, settings: Any) -> dict[str, Any]:
    import time

    from musimilar.embeddings import load_embeddings
    from musimilar.errors import NotReadyError
    from musimilar.index import build_index

    table = load_embeddings(library.embeddings_dir)
    if table is None:
        raise NotReadyError(f"{library.root}: no embeddings to index (run `musimilar embed`)")
    started = time.perf_counter()
    info = build_index(table, library.index_dir, settings.index.trees, settings.index.metric)
    seconds = time.perf_counter() - started
    render.message(
        f"index: {info.count} tracks, {info.dim}-d, {info.trees} trees in {seconds:.1f} s -> {library.index_dir}"
    )
    return {
        "count": info.count,
        "dim": info.dim,
        "trees": info.trees,
        "metric": info.metric,
        "model_fingerprint": info.model_fingerprint,
        "seconds": round(seconds, 3),
    }


def _check(library: Any, settings: Any) -> dict[str, Any]:
    from musimilar.embeddings import load_embeddings
    from musimilar.errors import NotReadyError
    from musimilar.index import measure_recall, open_searcher

    table = load_embeddings(library.embeddings_dir)
    if table is None:
        raise NotReadyError(f"{library.root}: no embeddings (run `musimilar embed`)")
    index_settings = settings.index.model_copy(update={"exact_below": 0})
    searcher = open_searcher(table, library.index_dir, index_settings)
    if searcher.mode != "annoy":
        raise NotReadyError(f"{library.root}: no index to check (run `musimilar index`)")
    recall = measure_recall(table, searcher, k=10)
    render.message(
        f"index: recall@10 {recall:.3f} against exact search ({min(len(table), 1000)} sampled queries, "
        f"{searcher.delta_size} tracks outside the index)"
    )
    return {"recall_at_10": recall, "sample": min(len(table), 1000), "delta": searcher.delta_size}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    m3u = "m3u"
    paths = "paths"


@app.command()
@handles_errors
def recommend(
    queries: Annotated[
        list[str],
        typer.Argument(
            help="Audio files or track ids (together: one seed); '-' reads "
            "one query per stdin line, each answered separately."
        ),
    ],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many recommendations.")] = 10,
    home: HomeOption = None,
    config: ConfigOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, json, csv, m3u or paths.")
    ] = OutputFormat.table,
    exclude_same_album: Annotated[bool, typer.Option(help="Leave out the query's album.")] = False,
    max_per_artist: Annotated[
        Optional[int], typer.Option(min=1, help="At most N per artist.", show_default=False)
    ] = None,
    max_per_album: Annotated[
        Optional[int], typer.Option(min=1, help="At most N per album.", show_default=False)
    ] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact cosine search instead of the index.")] = False,
) -> None:
    """The tracks of the library that sound most like the query."""
    from musimilar.recommend import Diversity, Recommender

    library = open_home(home, create=False)
    settings = load(config, library)
    recommender = Recommender(library, settings.index, exact=exact)
    if recommender.searcher.rebuild_due:
        render.warning(
            f"{recommender.searcher.delta_size} tracks were embedded after the index was built: "
            "run `musimilar index` to rebuild it"
        )
    diversity = Diversity(exclude_same_album, max_per_artist, max_per_album)
    if queries == ["-"]:
        answers = _answer_each(recommender, [line.strip() for line in sys.stdin if line.strip()], k, diversity)
        _print_batch(answers, output)
        if any(answer["error"] for answer in answers):
            raise typer.Exit(EXIT_PARTIAL)
        return
    results = recommender.recommend(queries, k, diversity)
    _print_results(results, output, " + ".join(queries))


def _answer_each(recommender: Any, lines: list[str], k: int, diversity: Any) -> list[dict[str, Any]]:
    answers = []
    for line in lines:
        try:
            results = recommender.recommend([line], k, diversity)
            answers.append({"query": line, "results": results, "error": None})
        except MusimilarError as error:
            render.message(f"error: {error.message}")
            answers.append({"query": line, "results": [], "error": error.message})
    return answers


def _print_results(results: list[Any], output: OutputFormat, title: str) -> None:
    if output == OutputFormat.json:
        render.print_json([r.as_dict() for r in results])
    elif output == OutputFormat.csv:
        sys.stdout.write(_csv_rows(results, None, header=True))
    elif output == OutputFormat.m3u:
        sys.stdout.write("#EXTM3U\n" + _m3u_entries(results))
    elif output == OutputFormat.paths:
        sys.stdout.write("".join(f"{r.path}\n" for r in results))
    else:
        _print_table(results, title)


def _print_batch(answers: list[dict[str, Any]], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        render.print_json(
            [
                {"query": a["query"], "results": [r.as_dict() for r in a["results"]], "error": a["error"]}
                for a in answers
            ]
        )
    elif output == OutputFormat.csv:
        sys.stdout.write("".join(_csv_rows(a["results"], a["query"], header=i == 0) for i, a in enumerate(answers)))
    elif output == OutputFormat.m3u:
        sys.stdout.write("#EXTM3U\n" + "".join(f"# {a['query']}\n" + _m3u_entries(a["results"]) for a in answers))
    else:
        for answer in answers:
            if output == OutputFormat.paths:
                sys.stdout.write("".join(f"{r.path}\n" for r in answer["results"]))
            elif not answer["error"]:
                _print_table(answer["results"], answer["query"])


CSV_FIELDS = ("rank", "track_id", "path", "similarity", "labels")


def _csv_rows(results: list[Any], query: str | None, header: bool) -> str:
    import json

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

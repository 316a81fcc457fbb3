"""Commands that turn a trained model into answers: embed, index, recommend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library, read_sources
from musimilar.cli.listing import (
    ExcludeSameAlbumOption,
    ListFormat,
    ListFormatOption,
    MaxPerAlbumOption,
    MaxPerArtistOption,
    diversity_of,
    print_batch,
    print_results,
)
from musimilar.cli.options import (
    ConfigOption,
    DeviceOption,
    FormatOption,
    HomeOption,
    OutOption,
    RelativeToOption,
    ReportFormat,
    SourcesArgument,
    WorkersOption,
    playlist_folder,
)
from musimilar.errors import EXIT_PARTIAL, MusimilarError

ModelOption = Annotated[
    Optional[Path], typer.Option(help="Model file (default: the home's current model).", show_default=False)
]
ShardOption = Annotated[
    Optional[str], typer.Option(help="Embed only slice I of N (I/N), for parallel jobs.", show_default=False)
]
MergeOption = Annotated[
    bool, typer.Option("--merge", help="The arguments are shard folders: merge them into the home's embeddings.")
]


@handles_errors
def embed(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    shard: ShardOption = None,
    merge: MergeOption = False,
    device: DeviceOption = None,
    workers: WorkersOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Embed every track of the catalog (new or changed ones only) with the current model.

    Exit code 3 when some files failed (recorded and skipped).
    """
    from musimilar.shards import parse_shard
    from musimilar.summaries import describe_embed, describe_merge

    paths = read_sources(sources)
    library = open_library(home, config, {"embed.device": device}, create=bool(paths) and not merge)
    if merge:
        merged = library.merge_shards(paths)
        render.message(describe_merge(merged))
        summary = merged.as_dict()
    else:
        with render.stage_progress() as progress:
            report = library.embed(paths, model, parse_shard(shard) if shard else None, workers, progress)
        render.message(describe_embed(report))
        summary = report.as_dict()
    if output == ReportFormat.json:
        render.print_json(summary)
    if summary.get("failed"):
        raise typer.Exit(EXIT_PARTIAL)


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
    from musimilar.summaries import describe_check, describe_index

    library = open_library(home, config, {"index.trees": trees, "index.metric": metric}, create=False)
    report = library.check_index() if check else library.build_index()
    render.message(describe_check(report) if check else describe_index(report))
    if output == ReportFormat.json:
        render.print_json(report.as_dict())


QueriesArgument = Annotated[
    list[str],
    typer.Argument(
        help="Audio files or track ids (together: one seed); '-' reads one query per stdin line, each answered "
        "separately."
    ),
]
KOption = Annotated[int, typer.Option("--k", "-k", min=1, help="How many recommendations.")]
ExactOption = Annotated[bool, typer.Option("--exact", help="Exact cosine search instead of the index.")]


@handles_errors
def recommend(
    queries: QueriesArgument,
    k: KOption = 10,
    home: HomeOption = None,
    config: ConfigOption = None,
    output: ListFormatOption = ListFormat.table,
    out: OutOption = None,
    relative_to: RelativeToOption = None,
    exclude_same_album: ExcludeSameAlbumOption = False,
    max_per_artist: MaxPerArtistOption = None,
    max_per_album: MaxPerAlbumOption = None,
    exact: ExactOption = False,
) -> None:
    """The tracks of the library that sound most like the query."""
    diversity = diversity_of(exclude_same_album, max_per_artist, max_per_album)
    library = open_library(home, config, create=False)
    ready = library.ready(exact)
    if ready.searcher.rebuild_due:
        render.warning(
            f"{ready.searcher.delta_size} tracks were embedded after the index was built: "
            "run `musimilar index` to rebuild it"
        )
    relative_to = relative_to or playlist_folder(library.settings)
    if queries == ["-"]:
        answers = _answer_each(library, [line.strip() for line in sys.stdin if line.strip()], k, diversity, exact)
        with render.stdout_to(out):
            print_batch(answers, output, relative_to)
        if any(answer["error"] for answer in answers):
            raise typer.Exit(EXIT_PARTIAL)
        return
    results = library.recommend(queries, k, diversity, exact)
    with render.stdout_to(out):
        print_results(results, output, " + ".join(queries), relative_to)


def _answer_each(library: Any, lines: list[str], k: int, diversity: Any, exact: bool) -> list[dict[str, Any]]:
    answers = []
    for line in lines:
        try:
            answers.append({"query": line, "results": library.recommend([line], k, diversity, exact), "error": None})
        except MusimilarError as error:
            render.message(f"error: {error.message}")
            answers.append({"query": line, "results": [], "error": error.message})
    return answers

"""Continuous listening: `radio` (the next tracks after a history, or an endless MPD queue) and `path` (A to B)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library
from musimilar.cli.listing import (
    ExcludeSameAlbumOption,
    ListFormat,
    ListFormatOption,
    MaxPerAlbumOption,
    MaxPerArtistOption,
    diversity_of,
    print_results,
)
from musimilar.cli.options import (
    ConfigOption,
    HomeOption,
    OutOption,
    RelativeToOption,
    playlist_folder,
)
from musimilar.errors import EXIT_INTERRUPTED, EXIT_PARTIAL, MusimilarError

SeenOption = Annotated[
    Optional[Path],
    typer.Option("--seen", help="A playlist or list of files already played: never repeated.", show_default=False),
]


def read_seen(path: Path | None) -> list[str]:
    from musimilar.playlists import read_m3u

    return [str(track) for track in read_m3u(path)] if path is not None else []


@handles_errors
def radio(
    seeds: Annotated[
        Optional[list[str]],
        typer.Argument(help="Audio files or track ids: the listening history so far.", show_default=False),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many tracks to add.")] = 10,
    seen: SeenOption = None,
    randomness: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="0 always takes the most similar track; more wanders.")
    ] = 0.0,
    rng_seed: Annotated[
        Optional[int], typer.Option("--rng-seed", help="Makes a random radio repeatable.", show_default=False)
    ] = None,
    mpd: Annotated[
        Optional[str],
        typer.Option("--mpd", help="Follow this MPD (HOST:PORT or socket path): keep its queue topped up."),
    ] = None,
    music_directory: Annotated[
        Optional[Path],
        typer.Option(help="MPD's music_directory as seen here (default: [mpd] music_directory).", show_default=False),
    ] = None,
    keep: Annotated[
        Optional[int], typer.Option(min=1, help="With --mpd: tracks kept after the current one.", show_default=False)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="With --mpd: top the queue up once and exit.")] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
    output: ListFormatOption = ListFormat.table,
    out: OutOption = None,
    relative_to: RelativeToOption = None,
    exclude_same_album: ExcludeSameAlbumOption = False,
    max_per_artist: MaxPerArtistOption = None,
    max_per_album: MaxPerAlbumOption = None,
) -> None:
    """The next tracks after a listening history, never one that --seen lists; or an endless MPD queue (--mpd).

    With --mpd, exit code 6 when MPD cannot be reached (--once) and 130 after Ctrl-C.
    """
    library = open_library(home, config, create=False)
    diversity = diversity_of(exclude_same_album, max_per_artist, max_per_album)
    history, already = list(seeds or []), read_seen(seen)

    def next_tracks(from_seeds: list[Any], seen_tracks: list[Any], how_many: int) -> list[Any]:
        if not from_seeds:
            raise MusimilarError("nothing to start the radio from: give a SEED (a file or a track id)")
        found = library.radio(
            [str(s) for s in from_seeds],
            how_many,
            seen=[str(s) for s in seen_tracks],
            diversity=diversity,
            randomness=randomness,
            rng_seed=rng_seed,
        )
        return found

    if mpd is None:
        if not history:
            raise typer.BadParameter("give at least one SEED (or --mpd to follow a player)")
        results = next_tracks(history, already, count)
        with render.stdout_to(out):
            print_results(results, output, "radio after " + " + ".join(history), relative_to or _folder(library))
        return
    _follow_mpd(library, mpd, music_directory, keep, once, history, already, next_tracks)


def _follow_mpd(
    library: Any,
    address: str,
    music_directory: Path | None,
    keep: int | None,
    once: bool,
    seeds: list[str],
    seen: list[str],
    next_tracks: Any,
) -> None:
    from musimilar.mpd_radio import MpdAddress, MpdRadio

    settings = library.settings.mpd
    folder = music_directory or (Path(settings.music_directory) if settings.music_directory else None)
    if folder is None:
        raise typer.BadParameter("--mpd needs --music-directory (or [mpd] music_directory): MPD's music folder")
    follower = MpdRadio(
        MpdAddress.parse(address),
        folder,
        lambda from_seeds, seen_tracks, count: [Path(r.path) for r in next_tracks(from_seeds, seen_tracks, count)],
        keep=keep or settings.keep,
        seeds=_seed_files(library, seeds),
        seen=[Path(s) for s in seen],
        password=os.environ.get("MUSIMILAR_MPD_PASSWORD"),
        notify=render.message,
    )
    try:
        report = follower.once() if once else follower.follow()
    except KeyboardInterrupt:
        render.message(f"radio: stopped after queueing {len(follower.report.added)} tracks")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    render.message(f"radio: queued {len(report.added)} tracks on {address}")
    for path in report.refused[:5]:
        render.warning(f"MPD cannot play {path} (outside {folder}, or not in MPD's database: run `mpc update`)")
    if report.refused:
        raise typer.Exit(EXIT_PARTIAL)


@handles_errors
def path(
    start: Annotated[str, typer.Argument(help="The first track: an audio file or a track id.")],
    end: Annotated[str, typer.Argument(help="The last track.")],
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Tracks between START and END.")] = 10,
    home: HomeOption = None,
    config: ConfigOption = None,
    output: ListFormatOption = ListFormat.table,
    out: OutOption = None,
    relative_to: RelativeToOption = None,
    exclude_same_album: ExcludeSameAlbumOption = False,
    max_per_artist: MaxPerArtistOption = None,
    max_per_album: MaxPerAlbumOption = None,
) -> None:
    """A path of tracks from START to END, each close to its point on the way."""
    library = open_library(home, config, create=False)
    diversity = diversity_of(exclude_same_album, max_per_artist, max_per_album)
    results = library.path(start, end, steps=steps, diversity=diversity)
    with render.stdout_to(out):
        print_results(results, output, f"from {start} to {end}", relative_to or _folder(library))


def _seed_files(library: Any, seeds: list[str]) -> list[Path]:
    """The files of the seeds (MPD queues files): a track id becomes its catalog path."""
    from musimilar.ready import track_id_of

    files = []
    with library.catalog() as catalog:
        for seed in seeds:
            if (track_id := track_id_of(seed)) is not None:
                track = catalog.track(track_id)
                if track is None:
                    raise MusimilarError(f"{seed}: no track with this id in the catalog")
                files.append(Path(track.path))
            else:
                files.append(Path(seed))
    return files


def _folder(library: Any) -> Path | None:
    return playlist_folder(library.settings)

"""`musimilar playlist push`: a named playlist on a Subsonic API server (Navidrome, Gonic, Airsonic, Supysonic)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library
from musimilar.cli.listing import ExcludeSameAlbumOption, MaxPerAlbumOption, MaxPerArtistOption, diversity_of
from musimilar.cli.options import ConfigOption, FormatOption, HomeOption, ReportFormat
from musimilar.cli.radio import SeenOption, read_seen
from musimilar.errors import EXIT_PARTIAL, SettingsError

PASSWORD_VARIABLE = "MUSIMILAR_SUBSONIC_PASSWORD"


@handles_errors
def push(
    name: Annotated[str, typer.Argument(help="The playlist's name on the server (replaced if it exists).")],
    seeds: Annotated[
        Optional[list[str]], typer.Argument(help="Audio files or track ids, as for recommend.", show_default=False)
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many recommendations.")] = 10,
    use_radio: Annotated[bool, typer.Option("--radio", help="The next tracks after the seeds, as `radio`.")] = False,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="With --radio: how many tracks.")] = 10,
    seen: SeenOption = None,
    from_playlist: Annotated[
        Optional[Path], typer.Option("--from", help="Push this M3U playlist instead of recommendations.")
    ] = None,
    subsonic: Annotated[
        Optional[str], typer.Option(help="Server URL (default: [subsonic] url).", show_default=False)
    ] = None,
    user: Annotated[Optional[str], typer.Option(help="User (default: [subsonic] user).", show_default=False)] = None,
    library_root: Annotated[
        Optional[Path], typer.Option(help="Local library folder the server also sees.", show_default=False)
    ] = None,
    server_root: Annotated[
        Optional[str],
        typer.Option(help="How the server's song paths write --library-root ('' for relative).", show_default=False),
    ] = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    output: FormatOption = ReportFormat.table,
    exclude_same_album: ExcludeSameAlbumOption = False,
    max_per_artist: MaxPerArtistOption = None,
    max_per_album: MaxPerAlbumOption = None,
) -> None:
    """Create or replace a playlist on a Subsonic API server, never leaving it half-replaced.

    The password comes from $MUSIMILAR_SUBSONIC_PASSWORD, else a prompt. Exit code 3 when some tracks are not on
    the server (the rest are pushed), 6 when the server cannot be reached, 7 when it refuses the user.
    """
    from musimilar.playlists import read_m3u

    library = open_library(home, config, create=from_playlist is not None)
    settings = library.settings.subsonic.model_copy(
        update={
            k: v
            for k, v in {
                "url": subsonic,
                "user": user,
                "library_root": library_root,
                "server_root": server_root,
            }.items()
            if v is not None
        }
    )
    if not settings.url or not settings.user:
        raise SettingsError("playlist push needs --subsonic URL and --user (or [subsonic] url and user)")
    if from_playlist is not None:
        paths = read_m3u(from_playlist)
    else:
        paths = _recommended(
            library,
            seeds or [],
            k,
            use_radio,
            count,
            read_seen(seen),
            diversity_of(exclude_same_album, max_per_artist, max_per_album),
        )
    report = library.push_playlist(name, paths, _password(), settings, render.message)
    render.message(
        f"playlist {name!r}: {report.pushed} tracks on {settings.url}"
        + (f" (replaced {report.replaced})" if report.replaced else "")
        + (f"; {len(report.unmapped)} not on the server" if report.unmapped else "")
    )
    for missing in report.unmapped[:5]:
        render.warning(f"not on the server: {missing}")
    if output == ReportFormat.json:
        render.print_json(report.as_dict())
    if report.unmapped:
        raise typer.Exit(EXIT_PARTIAL)


def _recommended(
    library: Any, seeds: list[str], k: int, use_radio: bool, count: int, seen: list[str], diversity: Any
) -> list[Path]:
    if not seeds:
        raise typer.BadParameter("give the seeds (audio files or track ids), or --from PLAYLIST")
    if use_radio:
        results = library.radio(seeds, count, seen=seen, diversity=diversity)
    else:
        results = library.recommend(seeds, k, diversity)
    return [Path(r.path) for r in results]


def _password() -> str:
    """From the environment, else asked for on the terminal: never a flag, which shell history would keep."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise SettingsError(f"set {PASSWORD_VARIABLE}: there is no terminal to ask for the server's password on")
    return typer.prompt("Subsonic password", hide_input=True)

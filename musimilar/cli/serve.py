"""Commands that show the library to people: serve (a local web page), map (a picture of it), path (A to B)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library
from musimilar.cli.options import ConfigOption, FormatOption, HomeOption, ReportFormat

DEFAULT_PORT = 8765
MAX_WORKERS = 64


class MapMethod(str, Enum):
    pca = "pca"
    umap = "umap"


@handles_errors
def serve(
    home: HomeOption = None,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; any but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    token: Annotated[
        bool,
        typer.Option(
            "--token",
            help="Require a token even on loopback. The token is $MUSIMILAR_SERVE_TOKEN, else one is made up and "
            "printed with a one-time login URL (never pass it as a flag: it would stay in the shell's history).",
        ),
    ] = False,
    upload_limit_mb: Annotated[int, typer.Option(min=1, help="Largest file a visitor may upload, in MiB.")] = 64,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Server processes. One answers several hundred requests a second on one core; more use more "
            "cores (and memory: each is a Python process of its own) for many clients at once.",
        ),
    ] = 1,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
) -> None:
    """A local web page to browse the library, listen, follow a radio, walk a path and see the map."""
    from musimilar.serve.run import plan_access
    from musimilar.serve.run import serve as run_server
    from musimilar.serve.state import ServeOptions

    root = open_library(home, config, create=False).home.root  # a missing home or bad settings: one line, now
    options = ServeOptions(host, port, upload_limit_mb * 1024 * 1024, workers=workers)
    run_server(root, config, options, plan_access(options, token), render.message, open_browser)


@handles_errors
def map_command(
    home: HomeOption = None,
    by: Annotated[
        Optional[str], typer.Option("--by", help="Colour by this label: folder, genre, artist, album...")
    ] = None,
    method: Annotated[MapMethod, typer.Option(help="pca (numpy) or umap (needs musimilar[map]).")] = MapMethod.pca,
    out: Annotated[
        Path, typer.Option("--out", help="map.html (opens from disk) or map.png (needs matplotlib).")
    ] = Path("map.html"),
    output: FormatOption = ReportFormat.table,
) -> None:
    """The library's map as one self-contained HTML page or a PNG picture."""
    from musimilar.mapview import export_map

    library = open_library(home, create=False)
    report = export_map(library.home.root, out.expanduser().resolve(), method.value, by)
    render.message(f"map: {report.count} tracks ({report.method}) -> {report.out}")
    if output == ReportFormat.json:
        render.print_json(report.as_dict())

"""Options shared by several commands, defined once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

HomeOption = Annotated[
    Optional[Path],
    typer.Option(
        "--home", help="Library home (default: $MUSIMILAR_HOME, else the user data directory).", show_default=False
    ),
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", help="Settings TOML file (default: musimilar.toml in the home).", show_default=False),
]
WorkersOption = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        min=1,
        help="Decoding processes (default: one per usable core; never more than --threads).",
        show_default=False,
    ),
]
ThreadsOption = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        min=1,
        help="Cores torch, BLAS and the worker pools may use (default: $MUSIMILAR_THREADS, else the cores "
        "this process may use).",
        show_default=False,
    ),
]
DeviceOption = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or mps.", show_default=False)]
SourcesArgument = Annotated[
    Optional[list[Path]],
    typer.Argument(help="Audio folders or files to add first ('-' reads paths from stdin).", show_default=False),
]


class ReportFormat(str, Enum):
    table = "table"
    json = "json"


FormatOption = Annotated[ReportFormat, typer.Option("--format", help="table for people, json for scripts.")]
OutOption = Annotated[
    Optional[Path],
    typer.Option("--out", help="Write the output to this file (atomically) instead of stdout.", show_default=False),
]
RelativeToOption = Annotated[
    Optional[Path],
    typer.Option(
        "--relative-to",
        help="Playlist paths relative to this folder (default: [playlist] relative_to; else absolute).",
        show_default=False,
    ),
]


def playlist_folder(settings: object) -> Optional[Path]:
    """The [playlist] relative_to setting as a path, when set."""
    folder = settings.playlist.relative_to  # type: ignore[attr-defined]
    return Path(folder).expanduser() if folder else None

"""The `musimilar` command: a Typer app; every command is registered here, from modules that never import this one."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from musimilar import __version__
from musimilar.cli import demo, evaluation, labelling, library, playlist, radio, search, serve, training
from musimilar.cli.options import ThreadsOption

app = typer.Typer(
    name="musimilar",
    help="Learn what your music library sounds like, with no labels, and find the songs that sound alike.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
labels_app = typer.Typer(
    help="Give tracks labels (genre, artist, album...) for evaluate and classify.", no_args_is_help=True
)
playlist_app = typer.Typer(help="Playlists on music servers.", no_args_is_help=True)

for command in (
    library.convert,
    training.train,
    search.embed,
    search.index,
    search.recommend,
    radio.radio,
    radio.path,
    evaluation.evaluate,
    evaluation.classify,
    library.info,
    demo.demo,
    serve.serve,
):
    app.command()(command)
app.command("map")(serve.map_command)
config_app.command("show")(library.config_show)
labels_app.command("import")(labelling.labels_import)
labels_app.command("head")(labelling.labels_head)
playlist_app.command("push")(playlist.push)
app.add_typer(config_app, name="config")
app.add_typer(labels_app, name="labels")
app.add_typer(playlist_app, name="playlist")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"musimilar {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    threads: ThreadsOption = None,
) -> None:
    """Learn what your music library sounds like, with no labels, and find the songs that sound alike."""
    if threads is not None:  # the environment layer of the settings, inherited by worker and torchrun processes
        os.environ["MUSIMILAR_THREADS"] = str(threads)


def main() -> None:
    app()

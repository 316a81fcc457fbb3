"""`musimilar train`: convert what is given, train on the cache, then embed and index the library."""

from __future__ import annotations

import contextlib
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
from musimilar.errors import EXIT_PARTIAL


@app.command()
@handles_errors
def train(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the library.", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Pairs per step.", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW).", show_default=False)] = None,
    loss: Annotated[Optional[str], typer.Option(help="ntxent, infonce or supcon.", show_default=False)] = None,
    by: Annotated[
        Optional[str],
        typer.Option(help="Label for --loss supcon (folder, genre, artist, album...).", show_default=False),
    ] = None,
    size: Annotated[
        Optional[str],
        typer.Option(
            help="Model size: small (the default, fits a laptop CPU), base or large (GPUs).", show_default=False
        ),
    ] = None,
    minutes: Annotated[
        Optional[float], typer.Option(help="Time budget: stop cleanly when it is spent.", show_default=False)
    ] = None,
    device: DeviceOption = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.", show_default=False)] = None,
    compile_model: Annotated[
        Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the model.", show_default=False)
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the last interrupted run.")] = False,
    index: Annotated[bool, typer.Option("--index/--no-index", help="Embed and index the library afterwards.")] = True,
    head: Annotated[
        Optional[str],
        typer.Option(
            "--head",
            help="Then fit a classifier for this label (genre, artist...) into the model file, for `classify`.",
            show_default=False,
        ),
    ] = None,
    workers: WorkersOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Learn, with no labels, what the library sounds like; then embed and index it for `recommend`.

    Runs under `torchrun --nproc-per-node N -m musimilar train ...` on several GPUs (or CPU processes).
    """
    from musimilar import distributed
    from musimilar.devices import pick_device
    from musimilar.train import train as train_model

    if head and not index:
        raise typer.BadParameter("--head needs the library embedded with the new model: leave out --no-index")
    ranks = distributed.ranks_from_environment()
    library = open_home(home)
    flags = {
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.loss": loss,
        "train.by": by,
        "model.size": size,
        "train.minutes": minutes,
        "train.device": device,
        "train.seed": seed,
        "train.compile": compile_model,
    }
    settings = load(config, library, flags)
    with library.exclusive("train") if ranks.is_main else contextlib.nullcontext():
        paths = read_sources(sources)
        if ranks.distributed:  # the other processes wait while the main one converts
            distributed.start(ranks, pick_device(settings.train.device))
        failed: list[Any] = []
        if paths and ranks.is_main:
            failed = convert_sources(library, paths, settings, workers).failed
        distributed.barrier()
        with render.progress_bar("train", "steps") as update:
            report = train_model(
                library,
                settings,
                resume=resume,
                notify=render.message,
                on_step=lambda e: update(
                    e.step,
                    e.steps,
                    note=f"epoch {e.epoch}/{e.epochs} loss {e.loss:.3f} {e.clips_per_second:.0f} clips/s",
                ),
            )
        if not ranks.is_main:
            return
        render.message(
            f"train: {report.epochs} epochs, {report.steps} steps in {report.seconds:.0f} s "
            f"({report.stopped}); model {report.fingerprint} is now the home's current model"
        )
        summary: dict[str, Any] = {
            "train": _report_dict(report),
            "convert_failed": [{"path": p, "error": e} for p, e in failed],
        }
        if index:
            render.message("embedding the library and building the index (skip with --no-index)")
            summary.update(embed_and_index(library, settings))
        if head:
            from musimilar.cli.evaluation import report_head

            summary["head"] = report_head(library, head)
    if output == ReportFormat.json:
        render.print_json(summary)
    if failed or summary.get("embed", {}).get("failed"):
        raise typer.Exit(EXIT_PARTIAL)


def embed_and_index(library: Any, settings: Any) -> dict[str, Any]:
    from musimilar.cli.search import build_index_reporting, embed_reporting

    device = settings.embed.device if settings.embed.device != "auto" else settings.train.device
    embedded = embed_reporting(library, None, None, device)
    built = build_index_reporting(library, settings)
    return {"embed": embedded, "index": built}


def _report_dict(report: Any) -> dict[str, Any]:
    from musimilar.train import report_as_dict

    return report_as_dict(report)

"""`musimilar train`: convert what is given, train on the cache, then embed and index the library."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors, open_library, read_sources
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

EpochsOption = Annotated[
    Optional[int], typer.Option(help="Passes over the library (default: until it stops improving).", show_default=False)
]
BatchOption = Annotated[Optional[int], typer.Option(help="Pairs per step.", show_default=False)]
LrOption = Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW).", show_default=False)]
LossOption = Annotated[Optional[str], typer.Option(help="ntxent, infonce or supcon.", show_default=False)]
ByOption = Annotated[
    Optional[str], typer.Option(help="Label for --loss supcon (folder, genre, artist, album...).", show_default=False)
]
SizeOption = Annotated[
    Optional[str],
    typer.Option(help="Model size: small (the default, fits a laptop CPU), base or large (GPUs).", show_default=False),
]
MinutesOption = Annotated[
    Optional[float], typer.Option(help="Time budget: stop cleanly when it is spent.", show_default=False)
]
SeedOption = Annotated[Optional[int], typer.Option(help="Random seed.", show_default=False)]
CompileOption = Annotated[
    Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the model.", show_default=False)
]
ResumeOption = Annotated[
    bool,
    typer.Option("--resume", help="Continue the last interrupted run, or a finished one with --minutes or --epochs."),
]
IndexOption = Annotated[bool, typer.Option("--index/--no-index", help="Embed and index the library afterwards.")]
HeadOption = Annotated[
    Optional[str],
    typer.Option(
        "--head",
        help="Then fit a classifier for this label (genre, artist...) into the model file, for `classify`.",
        show_default=False,
    ),
]


@handles_errors
def train(
    sources: SourcesArgument = None,
    home: HomeOption = None,
    config: ConfigOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchOption = None,
    lr: LrOption = None,
    loss: LossOption = None,
    by: ByOption = None,
    size: SizeOption = None,
    minutes: MinutesOption = None,
    device: DeviceOption = None,
    seed: SeedOption = None,
    compile_model: CompileOption = None,
    resume: ResumeOption = False,
    index: IndexOption = True,
    head: HeadOption = None,
    workers: WorkersOption = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Learn, with no labels, what the library sounds like; then embed and index it for `recommend`.

    Runs under `torchrun --nproc-per-node N -m musimilar train ...` on several GPUs (or CPU processes).
    """
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
    library = open_library(home, config, flags)
    with render.stage_progress() as progress:
        summary = library.train(read_sources(sources), resume, index, head, workers, progress, render.message)
    if not summary.is_main:
        return
    if output == ReportFormat.json:
        render.print_json(summary.as_dict())
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)

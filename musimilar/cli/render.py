"""Output: data on stdout, messages and progress on stderr; colour and bars only on a terminal."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def errors() -> Console:
    """The console for messages (stderr); plain text when stderr is not a terminal."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def data() -> Console:
    """The console for results (stdout)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def message(text: str) -> None:
    errors().print(text, markup=False)


def warning(text: str) -> None:
    errors().print(f"warning: {text}", markup=False, style="yellow")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def stdout_to(path: Path | None) -> Iterator[None]:
    """Send what is printed as data to `path`, written atomically when the block succeeds; stdout when None."""
    if path is None:
        yield
        return
    from musimilar.home import atomic_write_text

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    atomic_write_text(Path(path).expanduser(), buffer.getvalue())
    message(f"wrote {path}")


STAGE_UNITS = {"convert": "files", "train": "steps", "embed": "tracks", "evaluate": "crops", "synthesise": "clips"}


class RateColumn(TextColumn):
    """Items per second, named after what each stage counts."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        unit = STAGE_UNITS.get(task.description, "items")
        return Text("" if speed is None else f"{speed:.1f} {unit}/s")


@contextmanager
def stage_progress() -> Iterator[Any]:
    """Yield the library's `progress(stage, done, total, note)`: one bar per stage on a terminal, else nothing."""
    console = errors()
    if not console.is_terminal:
        yield lambda stage, done, total, note="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int, note: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=None, note="")
            bar.update(tasks[stage], completed=done, total=total, note=note)

        yield update

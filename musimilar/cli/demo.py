"""`musimilar demo`: see the whole flow work with no music of your own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from musimilar.cli import render
from musimilar.cli.common import handles_errors
from musimilar.cli.options import FormatOption, ReportFormat


@handles_errors
def demo(
    directory: Annotated[
        Optional[Path], typer.Argument(help="Where the demo library and home go.", show_default="./musimilar-demo")
    ] = None,
    output: FormatOption = ReportFormat.table,
) -> None:
    """Synthesise a small library in several styles, then convert, train, embed, index and recommend on it."""
    from musimilar.demo import run_demo

    folder = (directory or Path("musimilar-demo")).expanduser().resolve()
    with render.stage_progress() as progress:
        report = run_demo(folder, render.message, progress)
    if output == ReportFormat.json:
        render.print_json(dataclasses.asdict(report))
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    from rich.table import Table

    console = render.data()
    for query in report.queries:
        table = Table(title=f"like {Path(query.path).name} ({query.style})", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("similarity", justify="right")
        table.add_column("track")
        table.add_column("style")
        for rank, (path, style, similarity) in enumerate(query.results, start=1):
            mark = style if style == query.style else f"{style} (other)"
            table.add_row(str(rank), f"{similarity:.3f}", Path(path).name, mark)
        console.print(table)
    console.print(
        f"same-style share of the recommendations: {report.same_style_share:.0%} "
        f"(chance {report.chance:.0%}); the demo home is {report.home} — try\n"
        f"  musimilar recommend {report.queries[0].path} --home {report.home}",
        markup=False,
        highlight=False,
    )

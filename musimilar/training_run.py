"""The `train DIR` chain as one library call: convert, train without labels, embed, index, and a classifier head.

Under torchrun every process runs this; the main one holds the home's lock, converts while the others wait at a
barrier, and alone embeds and indexes once the model is trained.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musimilar.summaries import describe_convert, describe_embed, describe_head, describe_index, describe_train

if TYPE_CHECKING:
    from musimilar.convert import ConvertReport
    from musimilar.embed import EmbedReport
    from musimilar.indexing import IndexReport
    from musimilar.library import Library, Notify, Progress
    from musimilar.train import TrainReport


@dataclass
class TrainSummary:
    train: TrainReport
    convert: ConvertReport | None = None
    embed: EmbedReport | None = None
    index: IndexReport | None = None
    head: dict[str, Any] | None = None
    is_main: bool = True  # False in the other processes of a torchrun job: they report nothing
    failed: list[tuple[str, str]] = field(default_factory=list)  # files that could not be converted or embedded

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `musimilar train --format json`."""
        summary: dict[str, Any] = {
            "train": asdict(self.train),
            "convert_failed": [{"path": p, "error": e} for p, e in (self.convert.failed if self.convert else [])],
        }
        if self.embed is not None:
            summary["embed"] = self.embed.as_dict()
        if self.index is not None:
            summary["index"] = self.index.as_dict()
        if self.head is not None:
            summary["head"] = self.head
        return summary


def run_training(
    library: Library,
    sources: list[Path],
    resume: bool,
    index: bool,
    head: str | None,
    workers: int | None,
    progress: Progress,
    notify: Notify | None,
) -> TrainSummary:
    from musimilar import distributed
    from musimilar.devices import pick_device
    from musimilar.errors import SettingsError

    if head and not index:
        raise SettingsError("--head needs the library embedded with the new model: leave out --no-index")
    say = notify or (lambda text: None)
    ranks = distributed.ranks_from_environment()
    with library.home.exclusive("train") if ranks.is_main else contextlib.nullcontext():
        if ranks.distributed:  # the other processes wait while the main one converts
            distributed.start(ranks, pick_device(library.settings.train.device))
        converted = _convert(library, sources, workers, progress) if sources and ranks.is_main else None
        if converted is not None:
            say(describe_convert(converted))
        distributed.barrier()
        summary = TrainSummary(_train(library, resume, progress, say), converted, is_main=ranks.is_main)
        if ranks.is_main:
            _after_training(library, summary, index, head, progress, say)
    return summary


def _convert(library: Library, sources: list[Path], workers: int | None, progress: Progress) -> ConvertReport:
    from musimilar.convert import convert

    return convert(library.home, sources, library.settings, workers, lambda d, t, p: progress("convert", d, t, ""))


def _train(library: Library, resume: bool, progress: Progress, say: Notify) -> TrainReport:
    from musimilar.train import train

    def on_step(event: Any) -> None:
        cap = f"/{event.epochs}" if event.epochs else ""
        note = f"epoch {event.epoch}{cap} loss {event.loss:.3f} {event.clips_per_second:.0f} clips/s"
        progress("train", event.step, event.steps, note)

    report = train(library.home, library.settings, resume=resume, notify=say, on_step=on_step)
    say(describe_train(report))
    return report


def _after_training(
    library: Library, summary: TrainSummary, index: bool, head: str | None, progress: Progress, say: Notify
) -> None:
    if summary.convert is not None:
        summary.failed.extend(summary.convert.failed)
    if not index:
        return
    say("embedding the library and building the index (skip with --no-index)")
    from musimilar.classify import train_head
    from musimilar.embed import embed_device, embed_library
    from musimilar.indexing import index_home

    device = embed_device(library.settings)
    on_embed = lambda d, t: progress("embed", d, t, "")  # noqa: E731
    summary.embed = embed_library(library.home, None, None, device, on_embed, library.settings.retrieval)
    say(describe_embed(summary.embed))
    summary.failed.extend(summary.embed.failed)
    summary.index = index_home(library.home, library.settings.index)
    say(describe_index(summary.index))
    if head:
        summary.head = train_head(library.ready(), head)
        say(describe_head(summary.head))

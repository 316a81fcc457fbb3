"""One-line summaries of each step's report, for people: the CLI prints them, the train chain notifies them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from musimilar.convert import ConvertReport
    from musimilar.embed import EmbedReport
    from musimilar.indexing import IndexCheck, IndexReport
    from musimilar.shards import MergeReport
    from musimilar.train import TrainReport

FAILURES_SHOWN = 5


def describe_convert(report: ConvertReport) -> str:
    """The summary lines of a convert, for people."""
    from musimilar.scan import describe_ignored

    lines = [
        f"convert: {report.scanned} files scanned, {report.new} new, {report.changed} changed, "
        f"{report.missing} missing, {report.converted} converted, {len(report.failed)} failed "
        f"in {report.seconds:.1f} s; cache {human_bytes(report.cache_bytes)}"
        + (f"; ignored: {describe_ignored(report.ignored)}" if report.ignored else "")
    ]
    lines += [f"  failed: {path}: {error}" for path, error in report.failed[:FAILURES_SHOWN]]
    if len(report.failed) > FAILURES_SHOWN:
        lines.append(f"  ... and {len(report.failed) - FAILURES_SHOWN} more (see `musimilar info --failed`)")
    return "\n".join(lines)


def describe_embed(report: EmbedReport) -> str:
    lines = [
        f"embed: {report.embedded} embedded, {report.reused} up to date, {report.removed} removed, "
        f"{len(report.failed)} failed in {report.seconds:.1f} s -> {report.directory}"
    ]
    lines += [f"  failed: {path}: {error}" for path, error in report.failed[:FAILURES_SHOWN]]
    return "\n".join(lines)


def describe_check(check: IndexCheck) -> str:
    return (
        f"index: recall@10 {check.recall_at_10:.3f} against exact search ({check.sample} sampled queries, "
        f"{check.delta} tracks outside the index)"
    )


def describe_index(report: IndexReport) -> str:
    return (
        f"index: {report.count} tracks, {report.dim}-d, {report.trees} trees in {report.seconds:.1f} s "
        f"-> {report.directory}"
    )


def describe_head(head: dict[str, Any]) -> str:
    return (
        f"head: a '{head['by']}' classifier over {head['labels']} labels, fit on {head['tracks']} tracks "
        f"(training accuracy {head['training_accuracy']:.3f}), stored in {head['model']}"
    )


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def describe_train(report: TrainReport) -> str:
    return (
        f"train: {report.epochs} epochs, {report.steps} steps in {report.seconds:.0f} s "
        f"({report.stopped}); model {report.fingerprint} is now the home's current model"
    )


def describe_merge(report: MergeReport) -> str:
    return f"embed: merged {report.merged} shard folders: {report.tracks} tracks -> {report.directory}"

"""`musimilar demo`: the whole flow on a synthesised library, for a fresh machine with no music of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from musimilar.library import Library, Notify, Progress

QUERIES = 5  # one clip of each style is asked for its neighbours
K = 5


@dataclass(frozen=True)
class DemoScale:
    """How big the demo library is and how long it trains: a few minutes of a laptop CPU by default."""

    styles: int = 5
    clips_per_style: int = 10
    clip_seconds: float = 20.0
    # A short run: the synthesised styles are learnt in a few epochs.
    training: tuple[tuple[str, object], ...] = (
        ("train.epochs", 12),
        ("train.batch_size", 32),
        ("train.crops_per_track", 4),
        ("train.minutes", 3.0),
        ("train.val_fraction", 0.1),
    )


@dataclass
class DemoQuery:
    path: str
    style: str
    results: list[tuple[str, str, float]]  # (path, style, similarity)


@dataclass
class DemoReport:
    home: str
    library: str
    tracks: int
    styles: int
    queries: list[DemoQuery] = field(default_factory=list)
    same_style_share: float = 0.0
    chance: float = 0.0
    val_segment_top1: float | None = None


def run_demo(
    directory: Path,
    notify: Notify,
    progress: Progress | None = None,
    scale: DemoScale = DemoScale(),
) -> DemoReport:
    """Synthesise a library under `directory`, then convert, train, embed, index and recommend on it."""
    from musimilar.synth import write_library

    step = progress or (lambda stage, done, total, note="": None)
    library_dir = directory / "library"
    library = Library.open(directory / "home", flags=dict(scale.training))
    notify(
        f"demo: synthesising {scale.styles * scale.clips_per_style} clips in {scale.styles} styles under {library_dir}"
    )
    tracks = write_library(
        library_dir,
        styles=scale.styles,
        per_style=scale.clips_per_style,
        seconds=scale.clip_seconds,
        formats=("ogg", "mp3", "flac", "wav"),
        seed=7,
        progress=lambda done, total: step("synthesise", done, total, ""),
    )
    with library:
        notify("demo: converting, training without labels, embedding and indexing")
        summary = library.train([library_dir], progress=step, notify=notify)
        style_of = {str(t.path.resolve()): t.style for t in tracks}
        queries = [next(t for t in tracks if t.style == style) for style in dict.fromkeys(t.style for t in tracks)]
        answers = [
            DemoQuery(
                str(query.path),
                query.style,
                [(r.path, style_of.get(r.path, "?"), r.similarity) for r in library.recommend([str(query.path)], K)],
            )
            for query in queries[:QUERIES]
        ]
    hits = [style == q.style for q in answers for _, style, _ in q.results]
    last = summary.train.history[-1] if summary.train.history else {}
    return DemoReport(
        str(library.home.root),
        str(library_dir),
        len(tracks),
        scale.styles,
        answers,
        same_style_share=sum(hits) / max(1, len(hits)),
        chance=(scale.clips_per_style - 1) / (len(tracks) - 1),
        val_segment_top1=last.get("val_segment_top1"),
    )

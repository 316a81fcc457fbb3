"""`musimilar demo`: the whole flow on a synthesised library, for a fresh machine with no music of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from musimilar.home import Home
from musimilar.settings import Settings, load_settings

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


Notify = Callable[[str], None]


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
    progress: Callable[[str, int, int], None] | None = None,
    scale: DemoScale = DemoScale(),
) -> DemoReport:
    """Synthesise a library under `directory`, then convert, train, embed, index and recommend on it."""
    from musimilar.convert import convert
    from musimilar.embed import embed_library
    from musimilar.embeddings import load_embeddings
    from musimilar.index import build_index
    from musimilar.recommend import Recommender
    from musimilar.synth import write_library
    from musimilar.train import train

    step = progress or (lambda stage, done, total: None)
    library_dir = directory / "library"
    home = Home.open(directory / "home")
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
        progress=lambda done, total: step("synthesise", done, total),
    )
    settings: Settings = load_settings(home=home.root, flags=dict(scale.training))
    with home.exclusive("demo"):
        notify("demo: converting (log-mel spectrogram cache)")
        convert(home, [library_dir], settings, progress=lambda done, total, path: step("convert", done, total))
        notify("demo: training without labels")
        report = train(
            home, settings, notify=notify, on_step=lambda e: step(f"train {e.epoch}/{e.epochs}", e.step, e.steps)
        )
        notify("demo: embedding and indexing")
        embed_library(home, progress=lambda done, total: step("embed", done, total))
        build_index(load_embeddings(home.embeddings_dir), home.index_dir, settings.index.trees)
    style_of = {str(t.path.resolve()): t.style for t in tracks}
    recommender = Recommender(home, settings.index)
    try:
        queries = [next(t for t in tracks if t.style == style) for style in dict.fromkeys(t.style for t in tracks)]
        answers = []
        for query in queries[:QUERIES]:
            results = recommender.recommend([str(query.path)], K)
            answers.append(
                DemoQuery(
                    str(query.path), query.style, [(r.path, style_of.get(r.path, "?"), r.similarity) for r in results]
                )
            )
    finally:
        recommender.close()
    hits = [style == q.style for q in answers for _, style, _ in q.results]
    last = report.history[-1] if report.history else {}
    return DemoReport(
        str(home.root),
        str(library_dir),
        len(tracks),
        scale.styles,
        answers,
        same_style_share=sum(hits) / max(1, len(hits)),
        chance=(scale.clips_per_style - 1) / (len(tracks) - 1),
        val_segment_top1=last.get("val_segment_top1"),
    )

"""The library façade: one object for one home, with every step of the flow as a method.

Every front end (the CLI, the demo, the benchmarks, the examples, the web server, the player integrations) drives
musimilar through `Library`, so they all give the same answers:

    library = Library.open(Path("~/.local/share/musimilar").expanduser(), flags={"train.minutes": 30})
    library.train([Path("~/Music").expanduser()])   # convert, train, embed, index
    for result in library.recommend(["song.mp3"], k=10):
        print(result.rank, result.similarity, result.path)

Methods that write take the home's lock for their duration and fail at once (exit code 4) when another process
holds it. Methods that answer queries share one `ReadyHome` (model, embeddings, searcher), opened on first use and
opened again by itself when a new model, new embeddings or a new index land on disk, so a long-lived process (a web
server) never answers from stale files and never reloads the model for each request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musimilar.home import Home, resolve_home
from musimilar.settings import Settings, load_settings

if TYPE_CHECKING:
    from musimilar.catalog import Catalog
    from musimilar.classify import ClassifyResult
    from musimilar.convert import ConvertReport
    from musimilar.embed import EmbedReport
    from musimilar.evaluate import EvaluationReport
    from musimilar.indexing import IndexCheck, IndexReport
    from musimilar.labels import LabelImport, LabelMap
    from musimilar.ready import Query, ReadyHome
    from musimilar.recommend import Diversity, Recommendation
    from musimilar.settings import SubsonicSettings
    from musimilar.shards import MergeReport
    from musimilar.subsonic_push import PushReport
    from musimilar.training_run import TrainSummary

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, note)
Notify = Callable[[str], None]


def _no_progress(stage: str, done: int, total: int, note: str = "") -> None:
    """The progress callback used when the caller gives none."""


def _no_notify(text: str) -> None:
    """The message callback used when the caller gives none."""


class Library:
    """One library home and its effective settings (defaults < TOML < MUSIMILAR_* environment < flags)."""

    def __init__(self, home: Home, settings: Settings) -> None:
        self.home = home
        self.settings = settings
        self._ready: ReadyHome | None = None
        self._ready_lock = threading.Lock()
        self._watched: tuple[str, ...] | None = None  # the files whose change re-opens the ready home
        self._checked_by: int | None = None  # the thread inside checked_current(), which found the disk matching

    @classmethod
    def open(
        cls,
        root: Path | None = None,
        create: bool = True,
        config: Path | None = None,
        flags: dict[str, Any] | None = None,
    ) -> Library:
        """The home at `root` (default: $MUSIMILAR_HOME, else the user data directory) with its settings."""
        from musimilar.threads import apply_thread_limit

        home = Home.open(resolve_home(root), create=create)
        settings = load_settings(config, home.root, {k: v for k, v in (flags or {}).items() if v is not None})
        apply_thread_limit(settings.system.threads)  # torch, BLAS and worker pools of this process and its workers
        return cls(home, settings)

    def close(self) -> None:
        if self._ready is not None:
            self._ready.close()
            self._ready = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def catalog(self) -> Catalog:
        """The home's catalog (use it in a `with` block)."""
        from musimilar.catalog import Catalog

        return Catalog(self.home.catalog_path)

    # ---- building: convert, train, embed, index

    def convert(
        self, paths: Sequence[Path], workers: int | None = None, progress: Progress | None = None
    ) -> ConvertReport:
        """Scan folders and files, and cache the log-mel of every new or changed audio file."""
        from musimilar.convert import convert

        step = progress or _no_progress
        with self.home.exclusive("convert"):
            return convert(self.home, list(paths), self.settings, workers, lambda d, t, p: step("convert", d, t, ""))

    def train(
        self,
        sources: Sequence[Path] = (),
        resume: bool = False,
        index: bool = True,
        head: str | None = None,
        workers: int | None = None,
        progress: Progress | None = None,
        notify: Notify | None = None,
    ) -> TrainSummary:
        """The whole `train DIR` chain: convert `sources`, train without labels, then embed, index and (with
        `head`) fit a classifier head. Runs under torchrun too: the other processes wait while the main one
        converts, and only the main one embeds and indexes."""
        from musimilar.training_run import run_training

        return run_training(self, list(sources), resume, index, head, workers, progress or _no_progress, notify)

    def embed(
        self,
        paths: Sequence[Path] = (),
        model: Path | None = None,
        shard: tuple[int, int] | None = None,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> EmbedReport:
        """Embed every converted track (of one shard) with no up-to-date embedding; `paths` are converted first
        (under the home's lock, never under a shard's alone, since conversion writes the shared cache)."""
        failed_to_convert = self.convert(paths, workers, progress).failed if paths else []
        scope = f"shard-{shard[0]}-of-{shard[1]}" if shard else None
        from musimilar.embed import embed_device, embed_library

        step = progress or _no_progress
        with self.home.exclusive(f"embed {shard[0]}/{shard[1]}" if shard else "embed", scope=scope):
            report = embed_library(
                self.home,
                model,
                shard,
                embed_device(self.settings),
                lambda d, t: step("embed", d, t, ""),
                self.settings.retrieval,
            )
        report.failed[:0] = failed_to_convert  # files that could not be converted are not embedded either
        return report

    def merge_shards(self, folders: Sequence[Path]) -> MergeReport:
        """Join `embed --shard` folders into the home's embeddings."""
        from musimilar.shards import merge_shards

        with self.home.exclusive("merge"):
            return merge_shards(self.home, list(folders), self.settings.retrieval)

    def build_index(self) -> IndexReport:
        """Build the Annoy index of the stored embeddings."""
        from musimilar.indexing import index_home

        with self.home.exclusive("index"):
            return index_home(self.home, self.settings.index)

    def check_index(self) -> IndexCheck:
        """Recall@10 of the index against exact search (each query's own track excluded)."""
        from musimilar.indexing import check_index

        return check_index(self.home, self.settings.index)

    # ---- answering: recommend, radio, path, classify, evaluate

    def ready(self, exact: bool = False) -> ReadyHome:
        """The home's model, embeddings and searcher, opened once and again whenever they change on disk."""
        from musimilar.ready import ReadyHome

        with self._ready_lock:
            current = self._ready
            checked = self._checked_by == threading.get_ident()
            stale = current is None or (not checked and current.disk_state != self._disk_state())
            if stale or (exact and current.searcher.mode != "exact"):
                if current is not None:
                    current.close()
                device = self.settings.embed.device if self.settings.embed.device != "auto" else "cpu"
                self._ready = ReadyHome(self.home, self.settings.index, exact=exact, device=device)
            return self._ready

    def is_current(self) -> bool:
        """True when the opened model, embeddings and searcher still match the files on disk (opens nothing)."""
        current = self._ready
        return current is not None and current.disk_state == self._disk_state()

    @contextmanager
    def checked_current(self) -> Iterator[bool]:
        """Whether the opened home still matches the files on disk (as is_current); inside, `ready()` takes that
        answer instead of reading the files' state again: a server checks before every quick answer, and the
        answer then reads it once, not twice. Other threads using this library still look at the disk."""
        current = self.is_current()
        self._checked_by = threading.get_ident() if current else None
        try:
            yield current
        finally:
            self._checked_by = None

    def embedded(self, track_ids: Sequence[int]) -> bool:
        """True when each of `track_ids` has a vector in the embeddings opened by the last `ready()` (the disk is
        not looked at: a caller checks `is_current()` or calls `ready()` for that)."""
        current = self._ready
        return current is not None and all(current.table.row_of(track_id) is not None for track_id in track_ids)

    def _disk_state(self) -> tuple[tuple[int, int], ...]:
        from musimilar.ready import disk_state, watched_files

        if self._watched is None:
            self._watched = watched_files(self.home)
        return disk_state(self._watched)

    def recommend(
        self, queries: Sequence[Query], k: int = 10, diversity: Diversity | None = None, exact: bool = False
    ) -> list[Recommendation]:
        """The k tracks that sound most like the queries together (track ids or audio files)."""
        from musimilar.recommend import recommend

        return recommend(self.ready(exact), list(queries), k, diversity)

    def radio(
        self,
        seeds: Sequence[Query],
        count: int = 10,
        seen: Sequence[Query] = (),
        avoid: Sequence[Query] = (),
        diversity: Diversity | None = None,
        randomness: float = 0.0,
        rng_seed: int | None = None,
    ) -> list[Recommendation]:
        """The next `count` tracks of a radio started from `seeds`, after the history `seen` (see listening.radio)."""
        from musimilar.listening import radio

        return radio(self.ready(), seeds, count, seen, avoid, diversity, randomness, rng_seed)

    def path(
        self, start: Query, end: Query, steps: int = 10, diversity: Diversity | None = None
    ) -> list[Recommendation]:
        """`steps` tracks leading from `start` to `end` (see listening.path)."""
        from musimilar.listening import path

        return path(self.ready(), start, end, steps, diversity)

    def classify(
        self,
        queries: Sequence[str],
        by: str | None = None,
        k: int = 10,
        top: int = 3,
        use_head: bool = True,
        keep_going: bool = False,
    ) -> list[ClassifyResult]:
        """The likeliest labels of each query, from its labelled neighbours or the model's head for `by`."""
        from musimilar.classify import classify

        return classify(self.ready(), list(queries), by, k, top, use_head, keep_going)

    def evaluate(
        self,
        by: str | None = None,
        k: int = 10,
        exclude_same: str | None = None,
        labels_csv: Path | None = None,
        seed: int = 0,
        control: bool = False,
        sample: int | None = None,
        progress: Progress | None = None,
    ) -> EvaluationReport:
        """How well the model's neighbours share the tracks' labels, beside a no-training baseline."""
        from musimilar.evaluate import evaluate

        step = progress or _no_progress
        ready = self.ready()
        return evaluate(
            ready, by, k, exclude_same, labels_csv, seed, control, sample, lambda d, t: step("evaluate", d, t, "")
        )

    def push_playlist(
        self,
        name: str,
        paths: Sequence[Path],
        password: str,
        server: SubsonicSettings | None = None,
        notify: Notify | None = None,
    ) -> PushReport:
        """Create or replace the playlist `name` on a Subsonic API server (default: the home's [subsonic] one)."""
        from musimilar.subsonic_push import push_to_server

        return push_to_server(self.home, server or self.settings.subsonic, name, paths, password, notify or _no_notify)

    # ---- labels and the home's state

    def import_labels(self, mapping: LabelMap) -> LabelImport:
        """Store a label file's labels (read with labels.read_label_csv) in the catalog."""
        from musimilar.labels import import_labels

        with self.home.exclusive("labels import"):
            return import_labels(self.home, mapping)

    def fit_head(self, by: str) -> dict[str, Any]:
        """Fit a classifier head for `by` on the stored embeddings and keep it in the model file."""
        from musimilar.classify import train_head

        with self.home.exclusive("labels head"):
            return train_head(self.ready(), by)

    def status(self) -> dict[str, Any]:
        """What the home holds and whether each part is up to date (`musimilar info --format json`)."""
        from musimilar.status import home_status

        return home_status(self.home)

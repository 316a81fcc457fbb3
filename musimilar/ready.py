"""A home ready to answer queries: its current model, its live embeddings and a searcher, opened once.

Recommend, radio, path, evaluate, classify and the web server all start here, so the checks (a model exists, the
embeddings are this model's, the index matches them) are made in one place.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musimilar.catalog import Catalog, Track, content_fingerprint
from musimilar.embeddings import MANIFEST_NAME as EMBEDDINGS_MANIFEST
from musimilar.embeddings import EmbeddingTable, load_embeddings
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.home import Home
from musimilar.index import MANIFEST_NAME as INDEX_MANIFEST
from musimilar.index import Searcher, open_searcher
from musimilar.model_card import ModelCard, read_card
from musimilar.neighbours import MANIFEST_NAME as NEIGHBOURS_MANIFEST
from musimilar.neighbours import NeighbourLists, embeddings_key, load_neighbours
from musimilar.settings import IndexSettings

if TYPE_CHECKING:
    import torch

    from musimilar.checkpoint import LoadedModel

REMEDY_EMBED = "run `musimilar embed` (or `musimilar train DIR`, which ends with it)"


Query = int | str  # a catalog track id, or text: a track id, or an audio file's path


def track_id_of(query: Query) -> int | None:
    """The catalog track id `query` names, or None when it names a file: an int is an id; text of digits is an id
    unless a file of that name exists here (a server passes ints, so that no request names a file)."""
    if isinstance(query, int):
        return query
    return int(query) if query.isascii() and query.isdigit() and not Path(query).exists() else None


@dataclass
class QueryVector:
    vector: np.ndarray  # [D] normalised
    exclude: set[int] = field(default_factory=set)  # the query's own track(s) and their exact duplicates
    tracks: list[Track] = field(default_factory=list)  # catalog tracks the query names, if any
    raw: np.ndarray | None = None  # [D] the model's own vector, before the retrieval post-processing
    track_id: int | None = None  # the library track whose stored vector `vector` is (None: another vector)


def watched_files(home: Home) -> tuple[str, ...]:
    """The files a ready home is opened from: when one is rewritten, the home is opened again."""
    files = (
        home.current_model_path,
        home.embeddings_dir / EMBEDDINGS_MANIFEST,
        home.index_dir / INDEX_MANIFEST,
        home.index_dir / NEIGHBOURS_MANIFEST,
    )
    return tuple(str(path) for path in files)  # strings: a server checks them on every query


def disk_state(files: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(mtime, size) of each of `files` (see watched_files); it changes when any of them is rewritten."""
    state = []
    for path in files:
        try:
            stat = os.stat(path)
            state.append((stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            state.append((0, -1))
    return tuple(state)


class ReadyHome:
    """The model, the live embeddings and the search structure of a home, so that many queries share one start-up."""

    def __init__(self, home: Home, index: IndexSettings, exact: bool = False, device: str = "cpu") -> None:
        self.home = home
        self.disk_state = disk_state(watched_files(home))
        self._device_name = device
        self._device: torch.device | None = None
        self._model: LoadedModel | None = None
        if not home.current_model_path.is_file():
            raise NotReadyError(f"{home.root}: no trained model yet (run `musimilar train DIR`)")
        self._card: ModelCard | None = read_card(home.current_model_path)
        table = load_embeddings(home.embeddings_dir)
        if table is None or len(table) == 0:
            raise NotReadyError(f"{home.root}: no embeddings yet: {REMEDY_EMBED}")
        if table.model_fingerprint != self.model_fingerprint():
            raise NotReadyError(f"{home.root}: the embeddings were made with another model: {REMEDY_EMBED}")
        # The web server reads from its worker threads; SQLite serialises the reads on one connection.
        self.catalog = Catalog(home.catalog_path, check_same_thread=False)
        live = table.live(self.catalog.live_versions())
        # Copies of one file, as they are now: a copy added later has no vector before `embed`, which reopens this.
        self._twins = self.catalog.twins()
        # Stored vectors and outside queries go through the same post-processing, fitted to the library.
        self.raw_table: EmbeddingTable = live
        self.table: EmbeddingTable = live.post_processed()
        self.searcher: Searcher = open_searcher(self.table, home.index_dir, index, force_exact=exact)
        # each stored track's exact nearest tracks, when they were computed from these very embeddings
        self.neighbours: NeighbourLists | None = load_neighbours(home.index_dir, embeddings_key(table))

    def model_fingerprint(self) -> str:
        """The current model's fingerprint, from its card when it has one (no torch needed), else from the model."""
        return self._card.fingerprint if self._card is not None else self.model.fingerprint

    @property
    def model(self) -> LoadedModel:
        """The current model, loaded on first use: queries that name library tracks never need it."""
        if self._model is None:
            from musimilar.embed import open_model

            self._model = open_model(self.home, None, self.device)
        return self._model

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from musimilar.devices import pick_device

            self._device = pick_device(self._device_name)
        return self._device

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> ReadyHome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stored_vector(self, track_id: int) -> np.ndarray | None:
        row = self.table.row_of(track_id)
        return None if row is None else np.asarray(self.table.vectors[row])

    def query_vector(self, query: Query) -> QueryVector:
        """A query is a catalog track id or an audio file (in the library or not)."""
        if (track_id := track_id_of(query)) is not None:
            track = self.catalog.track(track_id)
            if track is None:
                raise MusimilarError(f"{query}: no track with this id in the catalog")
            if (stored := self._stored(track)) is not None:
                return stored
            raw = self._embed_raw(Path(track.path))
            return QueryVector(self._post(raw), {track.id}, [track], raw)
        path = Path(query).expanduser().resolve()
        if not path.exists():
            raise MusimilarError(f"{query}: no such file or track id")
        track = self.catalog.track_by_path(path)
        if track is not None and _unchanged(track, path):
            stored = self._stored(track)
            if stored is not None:
                return stored
        raw = self._embed_raw(path)
        return QueryVector(self._post(raw), self._duplicates_of(path), [], raw)

    def _stored(self, track: Track) -> QueryVector | None:
        vector = self.stored_vector(track.id)
        if vector is None:
            return None
        raw = np.asarray(self.raw_table.vectors[self.raw_table.row_of(track.id)])
        return QueryVector(vector, set(self._twins.get(track.id, ())) | {track.id}, [track], raw, track.id)

    def _embed_raw(self, path: Path) -> np.ndarray:
        card = self._card
        if self._model is not None or card is None:
            from musimilar.embed import embed_file

            return embed_file(self.model, path, self.device)
        from musimilar.embed import embed_decoded
        from musimilar.query_crops import decode_query_crops

        # Cold: decode the crops (C code, outside the GIL) while torch and the model load on this thread.
        with ThreadPoolExecutor(1, thread_name_prefix="musimilar-decode") as pool:
            decoding = pool.submit(decode_query_crops, path, card.audio, card.mel, card.embed)
            model = self.model
            return embed_decoded(model, decoding.result(), self.device)

    def _post(self, raw: np.ndarray) -> np.ndarray:
        """Outside queries go through the post-processing the stored vectors went through."""
        return raw if self.table.post is None else self.table.post.apply(raw)

    def _embed_path(self, path: Path) -> np.ndarray:
        """A file's vector as searched (post-processed)."""
        return self._post(self._embed_raw(path))

    def _duplicates_of(self, path: Path) -> set[int]:
        return {t.id for t in self.catalog.tracks_with_fingerprint(content_fingerprint(path, path.stat().st_size))}


def _unchanged(track: Track, path: Path) -> bool:
    stat = path.stat()
    return track.status == "ok" and track.size == stat.st_size and track.mtime_ns == stat.st_mtime_ns

"""Recommendations: the library's tracks that sound most like a query (a file, a track id, or several of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musimilar.catalog import Catalog, Track
from musimilar.embeddings import EmbeddingTable, load_embeddings, normalise_rows
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.home import Home
from musimilar.index import Searcher, open_searcher
from musimilar.settings import IndexSettings

REMEDY_EMBED = "run `musimilar embed` (or `musimilar train DIR`, which ends with it)"


@dataclass
class Recommendation:
    rank: int
    track_id: int
    path: str
    similarity: float  # cosine
    labels: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "track_id": self.track_id,
            "path": self.path,
            "similarity": round(self.similarity, 6),
            "labels": self.labels,
        }


@dataclass
class Diversity:
    """Limits on the result list, all optional."""

    exclude_same_album: bool = False
    max_per_artist: int | None = None
    max_per_album: int | None = None
    duplicate_similarity: float | None = 0.995  # results this close to the query or a better result are collapsed


@dataclass
class QueryVector:
    vector: np.ndarray  # [D] normalised
    exclude: set[int] = field(default_factory=set)  # the query's own track(s) and their exact duplicates
    tracks: list[Track] = field(default_factory=list)  # catalog tracks the query names, if any


class Recommender:
    """Holds the model, the embeddings and the search structure, so that many queries share one start-up."""

    def __init__(self, home: Home, index: IndexSettings, exact: bool = False, device: str = "cpu") -> None:
        from musimilar.devices import pick_device
        from musimilar.embed import open_model

        self.home = home
        self.device = pick_device(device)
        self.model = open_model(home, None, self.device)
        table = load_embeddings(home.embeddings_dir)
        if table is None or len(table) == 0:
            raise NotReadyError(f"{home.root}: no embeddings yet: {REMEDY_EMBED}")
        if table.model_fingerprint != self.model.fingerprint:
            raise NotReadyError(f"{home.root}: the embeddings were made with another model: {REMEDY_EMBED}")
        self.catalog = Catalog(home.catalog_path)
        self.table = self._live_rows(table)
        self.searcher: Searcher = open_searcher(self.table, home.index_dir, index, force_exact=exact)

    def _live_rows(self, table: EmbeddingTable) -> EmbeddingTable:
        """Only tracks still in the library as they were embedded (removed or changed tracks never come back)."""
        live = {t.id: t.version for t in self.catalog.tracks("ok")}
        keep = np.array([live.get(int(i)) == int(v) for i, v in zip(table.track_ids, table.versions)], dtype=bool)
        return table if keep.all() else table.subset(keep)

    def close(self) -> None:
        self.catalog.close()

    def query_vector(self, query: str) -> QueryVector:
        """A query is a catalog track id or an audio file (in the library or not)."""
        if query.isdigit() and not Path(query).exists():
            track = self.catalog.track(int(query))
            if track is None:
                raise MusimilarError(f"{query}: no track with this id in the catalog")
            return self._stored(track) or QueryVector(self._embed_path(Path(track.path)), {track.id}, [track])
        path = Path(query).expanduser().resolve()
        if not path.exists():
            raise MusimilarError(f"{query}: no such file or track id")
        track = self.catalog.track_by_path(path)
        if track is not None and _unchanged(track, path):
            stored = self._stored(track)
            if stored is not None:
                return stored
        vector = self._embed_path(path)
        return QueryVector(vector, self._duplicates_of(path), [])

    def _stored(self, track: Track) -> QueryVector | None:
        row = self.table.row_of(track.id)
        if row is None:
            return None
        twins = {t.id for t in self.catalog.tracks_with_fingerprint(track.fingerprint)}
        return QueryVector(np.asarray(self.table.vectors[row]), twins | {track.id}, [track])

    def _embed_path(self, path: Path) -> np.ndarray:
        from musimilar.embed import embed_file

        return embed_file(self.model, path, self.device)

    def _duplicates_of(self, path: Path) -> set[int]:
        from musimilar.catalog import content_fingerprint

        return {t.id for t in self.catalog.tracks_with_fingerprint(content_fingerprint(path, path.stat().st_size))}

    def recommend(self, queries: list[str], k: int = 10, diversity: Diversity | None = None) -> list[Recommendation]:
        """The k best tracks for the queries taken together (their mean embedding)."""
        if not queries:
            raise MusimilarError("give at least one query (an audio file or a track id)")
        seeds = [self.query_vector(q) for q in queries]
        vector = normalise_rows(np.mean([s.vector for s in seeds], axis=0, keepdims=True))[0]
        exclude = set().union(*(s.exclude for s in seeds))
        seed_tracks = [t for s in seeds for t in s.tracks]
        return self._ranked(vector, k, exclude, seed_tracks, diversity or Diversity())

    def _ranked(
        self, vector: np.ndarray, k: int, exclude: set[int], seed_tracks: list[Track], diversity: Diversity
    ) -> list[Recommendation]:
        wanted = k
        while True:
            fetch = min(len(self.table), wanted * 4 + len(exclude))
            hits = self.searcher.search(vector, fetch, exclude)
            chosen = self._diversify(hits, k, vector, seed_tracks, diversity)
            if len(chosen) >= k or fetch >= len(self.table):
                return chosen
            wanted *= 4

    def _diversify(
        self, hits: list[tuple[int, float]], k: int, vector: np.ndarray, seed_tracks: list[Track], diversity: Diversity
    ) -> list[Recommendation]:
        seed_albums = {t.labels.get("album") for t in seed_tracks if t.labels.get("album")}
        per_artist: dict[str, int] = {}
        per_album: dict[str, int] = {}
        kept_vectors: list[np.ndarray] = []
        chosen: list[Recommendation] = []
        for track_id, similarity in hits:
            track = self.catalog.track(track_id)
            if track is None:
                continue
            artist, album = track.labels.get("artist"), track.labels.get("album")
            if diversity.exclude_same_album and album and album in seed_albums:
                continue
            if _over(per_artist, artist, diversity.max_per_artist) or _over(per_album, album, diversity.max_per_album):
                continue
            own = np.asarray(self.table.vectors[self.table.row_of(track_id)])
            if diversity.duplicate_similarity is not None and (
                float(own @ vector) >= diversity.duplicate_similarity
                and seed_tracks
                or any(float(own @ other) >= diversity.duplicate_similarity for other in kept_vectors)
            ):
                continue
            _count(per_artist, artist)
            _count(per_album, album)
            kept_vectors.append(own)
            chosen.append(Recommendation(len(chosen) + 1, track_id, track.path, similarity, track.labels))
            if len(chosen) == k:
                break
        return chosen


def _unchanged(track: Track, path: Path) -> bool:
    stat = path.stat()
    return track.status == "ok" and track.size == stat.st_size and track.mtime_ns == stat.st_mtime_ns


def _over(counts: dict[str, int], key: str | None, limit: int | None) -> bool:
    return limit is not None and key is not None and counts.get(key, 0) >= limit


def _count(counts: dict[str, int], key: str | None) -> None:
    if key is not None:
        counts[key] = counts.get(key, 0) + 1

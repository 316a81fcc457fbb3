"""Recommendations: the library's tracks that sound most like a query (a file, a track id, or several of them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from musimilar.catalog import Track
from musimilar.embeddings import normalise_rows
from musimilar.errors import MusimilarError
from musimilar.postprocess import csls
from musimilar.ready import Query, QueryVector, ReadyHome

CSLS_CANDIDATES = 100  # nearest tracks (by cosine) that CSLS re-orders for each answer
DUPLICATE_SLACK = 2  # catalog rows read beyond k at first, for the few tracks the rules or the collapse leave out


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


def seed_of(ready: ReadyHome, queries: list[Query]) -> QueryVector:
    """Several queries as one seed: their mean embedding, excluding all of their tracks."""
    if not queries:
        raise MusimilarError("give at least one query (an audio file or a track id)")
    seeds = [ready.query_vector(q) for q in queries]
    if len(seeds) == 1:
        return seeds[0]
    vector = normalise_rows(np.mean([s.vector for s in seeds], axis=0, keepdims=True))[0]
    return QueryVector(vector, set().union(*(s.exclude for s in seeds)), [t for s in seeds for t in s.tracks])


def recommend(
    ready: ReadyHome, queries: list[Query], k: int = 10, diversity: Diversity | None = None
) -> list[Recommendation]:
    """The k best tracks for the queries taken together (their mean embedding)."""
    seed = seed_of(ready, queries)
    return ranked(ready, seed.vector, k, seed.exclude, seed.tracks, diversity or Diversity(), around=seed.track_id)


def ranked(
    ready: ReadyHome,
    vector: np.ndarray,
    k: int,
    exclude: set[int],
    seed_tracks: list[Track],
    diversity: Diversity,
    history: Iterable[Track] = (),
    around: int | None = None,
) -> list[Recommendation]:
    """The k tracks nearest to `vector` that the diversity rules allow; `history` counts towards the limits.
    `around` names the library track whose stored vector `vector` is: its neighbour list may answer."""
    wanted = k
    while True:
        fetch = min(len(ready.table), max(wanted * 4, _csls_pool(ready)) + len(exclude))
        hits = _csls_reranked(ready, _nearest(ready, vector, fetch, exclude, around))
        chosen = _diversify(ready, hits, k, vector, seed_tracks, diversity, list(history))
        if len(chosen) >= k or fetch >= len(ready.table):
            return chosen
        wanted *= 4


def _nearest(
    ready: ReadyHome, vector: np.ndarray, count: int, exclude: set[int], around: int | None
) -> list[tuple[int, float]]:
    """The `count` tracks nearest to `vector`: from the precomputed list of track `around` when it holds enough
    (the same answer as the exact search), else from the searcher."""
    if around is not None and ready.neighbours is not None:
        hits = ready.neighbours.nearest(around, ready.table, count, exclude)
        if hits is not None:
            return hits
    return ready.searcher.search(vector, count, exclude)


def _csls_pool(ready: ReadyHome) -> int:
    post = ready.table.post
    return CSLS_CANDIDATES if post is not None and post.radius is not None else 0


def _csls_reranked(ready: ReadyHome, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The nearest tracks re-ordered by CSLS when the embeddings carry it (hubs move down); cosines unchanged."""
    post = ready.table.post
    if post is None or post.radius is None or not hits:
        return hits
    rows = ready.table.rows_of([track_id for track_id, _ in hits])
    scores = csls(np.array([similarity for _, similarity in hits]), post.radius[rows])
    return [hits[i] for i in np.argsort(-scores, kind="stable")]


class _Limits:
    """Per-artist and per-album counts of a result list, and the rules they are held to."""

    def __init__(self, diversity: Diversity, seed_tracks: list[Track], history: list[Track]) -> None:
        self.diversity = diversity
        self.seed_albums = {t.labels.get("album") for t in seed_tracks if t.labels.get("album")}
        self.per_artist: dict[str, int] = {}
        self.per_album: dict[str, int] = {}
        for track in history:
            self.count(track)

    def allows(self, track: Track) -> bool:
        artist, album = track.labels.get("artist"), track.labels.get("album")
        if self.diversity.exclude_same_album and album and album in self.seed_albums:
            return False
        return not (
            _over(self.per_artist, artist, self.diversity.max_per_artist)
            or _over(self.per_album, album, self.diversity.max_per_album)
        )

    def count(self, track: Track) -> None:
        for counts, key in ((self.per_artist, track.labels.get("artist")), (self.per_album, track.labels.get("album"))):
            if key is not None:
                counts[key] = counts.get(key, 0) + 1


def _diversify(
    ready: ReadyHome,
    hits: list[tuple[int, float]],
    k: int,
    vector: np.ndarray,
    seed_tracks: list[Track],
    diversity: Diversity,
    history: list[Track],
) -> list[Recommendation]:
    limits = _Limits(diversity, seed_tracks, history)
    kept = np.empty((k, ready.table.dim), dtype=np.float32)  # [k, D] vectors of the results chosen so far
    chosen: list[Recommendation] = []
    for batch in _batches(hits, k + DUPLICATE_SLACK):
        tracks = ready.catalog.tracks_by_id([track_id for track_id, _ in batch])
        vectors = np.asarray(ready.table.vectors[ready.table.rows_of([track_id for track_id, _ in batch])])  # [b, D]
        copies = _Copies(vectors, vector, kept[: len(chosen)], bool(seed_tracks), diversity.duplicate_similarity)
        picked: list[int] = []  # positions in this batch of the results chosen from it
        for position, (track_id, similarity) in enumerate(batch):
            track = tracks.get(track_id)
            if track is None or not limits.allows(track) or copies.is_copy(position, picked):
                continue
            limits.count(track)
            kept[len(chosen)] = vectors[position]
            picked.append(position)
            chosen.append(Recommendation(len(chosen) + 1, track_id, track.path, similarity, track.labels))
            if len(chosen) == k:
                return chosen
    return chosen


class _Copies:
    """Which tracks of a batch are near-copies of the query, of a result chosen before the batch, or of one
    another: all the cosines of a batch in three products, not two per track."""

    def __init__(
        self, vectors: np.ndarray, query: np.ndarray, kept: np.ndarray, from_seeds: bool, threshold: float | None
    ) -> None:
        """`vectors` [b, D]: the batch; `kept` [n, D]: the results chosen so far."""
        self.threshold = threshold
        if threshold is None:
            return
        before = (kept @ vectors.T >= threshold).any(axis=0) if len(kept) else np.zeros(len(vectors), dtype=bool)
        if from_seeds:
            before |= vectors @ query >= threshold
        self.before: list[bool] = before.tolist()  # [b]
        self.among: list[list[bool]] = (vectors @ vectors.T >= threshold).tolist()  # [b, b]

    def is_copy(self, position: int, picked: list[int]) -> bool:
        """True when batch track `position` is a copy of the query, an earlier result, or batch tracks `picked`."""
        if self.threshold is None:
            return False
        row = self.among[position]
        return self.before[position] or any(row[other] for other in picked)


def _batches(hits: list[tuple[int, float]], first: int) -> Iterable[list[tuple[int, float]]]:
    """`hits` in batches of growing size: most answers need little more than the first k tracks' catalog rows."""
    start, size = 0, first
    while start < len(hits):
        yield hits[start : start + size]
        start, size = start + size, size * 4


def _over(counts: dict[str, int], key: str | None, limit: int | None) -> bool:
    return limit is not None and key is not None and counts.get(key, 0) >= limit

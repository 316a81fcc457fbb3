"""Continuous listening: a radio that plays on from seeds, and a path of tracks from one track to another.

Both are built on `recommend.ranked`, so the diversity rules and the duplicate collapse hold here as everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musimilar.catalog import Track
from musimilar.embeddings import normalise_rows
from musimilar.ready import Query, ReadyHome, track_id_of
from musimilar.recommend import Diversity, Recommendation, ranked, seed_of

SEED_WEIGHT = 0.5  # the radio's next query: half the seeds, half the track just played, so it drifts but stays
AVOID_WEIGHT = 0.5  # how far each disliked track pushes the query away from itself
CANDIDATES = 10  # tracks the radio draws the next one from when it has some randomness
SPREAD = 0.05  # cosine difference that makes a candidate e times less likely at randomness 1


def radio(
    ready: ReadyHome,
    seeds: Sequence[Query],
    count: int = 10,
    seen: Sequence[Query] = (),
    avoid: Sequence[Query] = (),
    diversity: Diversity | None = None,
    randomness: float = 0.0,
    rng_seed: int | None = None,
) -> list[Recommendation]:
    """The next `count` tracks after the seeds and a listening history, never one of `seen` (ids or paths).

    Each next track is the most similar one not yet played to a query that follows the music: the seeds' mean
    blended with the track just played. `avoid` (skipped or disliked tracks) pushes the query away from them.
    `randomness` in [0, 1] draws among the best candidates instead of always taking the first.
    """
    diversity = diversity or Diversity()
    seed = seed_of(ready, list(seeds))
    anchor = _away_from(seed.vector, [_vector_of(ready, query) for query in avoid])
    played = _tracks_of(ready, seen)
    exclude = seed.exclude | {t.id for t in played} | _track_ids(ready, avoid)
    rng = np.random.default_rng(rng_seed)
    query, chosen = anchor, []
    for _ in range(count):
        candidates = ranked(ready, query, CANDIDATES if randomness > 0 else 1, exclude, seed.tracks, diversity, played)
        if not candidates:
            break
        pick = candidates[_draw([c.similarity for c in candidates], randomness, rng)]
        pick.rank = len(chosen) + 1
        chosen.append(pick)
        exclude.add(pick.track_id)
        played.append(ready.catalog.track(pick.track_id))
        query = normalise_rows(SEED_WEIGHT * anchor + (1 - SEED_WEIGHT) * ready.stored_vector(pick.track_id))
    return chosen


def path(
    ready: ReadyHome, start: Query, end: Query, steps: int = 10, diversity: Diversity | None = None
) -> list[Recommendation]:
    """`steps` tracks leading from `start` to `end` (neither included): each the nearest unused track to its point
    on the great circle between the two, so the list moves evenly from one sound to the other.
    """
    diversity = diversity or Diversity()
    first, last = ready.query_vector(start), ready.query_vector(end)
    exclude = first.exclude | last.exclude
    history: list[Track] = []
    chosen: list[Recommendation] = []
    for step in range(1, steps + 1):
        point = _slerp(first.vector, last.vector, step / (steps + 1))
        found = ranked(ready, point, 1, exclude, [], diversity, history)
        if not found:
            break
        found[0].rank = len(chosen) + 1
        chosen.append(found[0])
        exclude.add(found[0].track_id)
        history.append(ready.catalog.track(found[0].track_id))
    return chosen


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The unit vector a fraction `t` of the way from unit vector `a` to `b` along the great circle."""
    angle = float(np.arccos(np.clip(a @ b, -1.0, 1.0)))
    if angle < 1e-6:
        return a
    mixed = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    return normalise_rows(mixed[None, :])[0]


def _away_from(vector: np.ndarray, avoided: list[np.ndarray]) -> np.ndarray:
    if not avoided:
        return vector
    return normalise_rows((vector - AVOID_WEIGHT * np.mean(avoided, axis=0))[None, :])[0]


def _draw(similarities: list[float], randomness: float, rng: np.random.Generator) -> int:
    """The index of the candidate to play: the best one, or a draw weighted by similarity."""
    if randomness <= 0 or len(similarities) == 1:
        return 0
    scores = np.asarray(similarities, dtype=np.float64)
    weights = np.exp((scores - scores.max()) / (randomness * SPREAD))
    return int(rng.choice(len(scores), p=weights / weights.sum()))


def _vector_of(ready: ReadyHome, query: Query) -> np.ndarray:
    return ready.query_vector(query).vector


def _tracks_of(ready: ReadyHome, queries: Sequence[Query]) -> list[Track]:
    """The catalog tracks named by ids or paths; names the catalog does not know are passed over."""
    tracks = []
    for query in queries:
        track_id = track_id_of(query)
        track = (
            ready.catalog.track(track_id)
            if track_id is not None
            else ready.catalog.track_by_path(Path(str(query)).expanduser().resolve())
        )
        if track is not None:
            tracks.append(track)
    return tracks


def _track_ids(ready: ReadyHome, queries: Sequence[Query]) -> set[int]:
    return {track.id for track in _tracks_of(ready, queries)}

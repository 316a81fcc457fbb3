"""Each track's nearest tracks, computed exactly once when the index is built, so that a query from one library
track needs no search at all.

A search from a track (`musimilar recommend ID`, the server's similar tracks) costs milliseconds in Annoy at 100k
tracks; reading the track's list costs microseconds, and the list is the exact top, never an approximation. The
lists live in the index folder (`neighbours.json` naming `neighbours.<gen>.npy` and `owners.<gen>.npy`), committed
like the index, under the key of the embeddings they were computed from (model, post-processing, track ids and
versions). Any change to the embeddings changes the key and the lists are ignored (the live search answers) until
the next `musimilar index`. Only cosines' order is stored: similarities are recomputed from the vectors, so an
answer from the lists is the answer of the exact search, to the last bit of each score.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musimilar.embeddings import EmbeddingTable, commit_file_set, normalise_rows, npy_writer, read_file_set, utc_now
from musimilar.idlookup import IdLookup
from musimilar.postprocess import fingerprint as postprocess_fingerprint

MANIFEST_NAME = "neighbours.json"
FORMAT_VERSION = 1
REMEDY = "run `musimilar index` to rebuild them"
LIST_LENGTH = 128  # a k=25 answer re-ranked by CSLS (100 candidates) plus a few excluded duplicates fits
MAX_TRACKS = 200_000  # all pairs: 100-135 s for 100k 256-d tracks on 2 cores, 4x at 200k; above, the index answers
SCORE_BLOCK = 1 << 24  # scores held at once (64 MiB of float32)
FEW_IDS = 8  # excluded ids compared one by one, not through np.isin
SAMPLE_STRIDE = 4  # 1 column in 4 sets each row's threshold (see _candidates)

Progress = Callable[[int, int], None]  # (rows done, rows in all)


def embeddings_key(table: EmbeddingTable) -> str:
    """Names one set of stored embeddings: the model, the post-processing, and which track versions they hold."""
    assert table.versions is not None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{table.model_fingerprint}|{postprocess_fingerprint(table.post)}|{table.dim}".encode())
    digest.update(np.ascontiguousarray(table.track_ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(table.versions, dtype=np.int64).tobytes())
    return digest.hexdigest()


def nearest_rows(vectors: np.ndarray, length: int, progress: Progress | None = None) -> np.ndarray:
    """[N, L] int32: the rows of each row's L most similar other rows (dot product), best first."""
    count = len(vectors)
    length = max(0, min(length, count - 1))
    lists = np.empty((count, length), dtype=np.int32)
    if length == 0:
        return lists
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    block = max(1, SCORE_BLOCK // count)
    starts = range(0, count, block)

    def fill(start: int) -> int:
        stop = min(start + block, count)
        lists[start:stop] = _block_top(vectors, start, stop, length)
        return stop

    # numpy's partition and sort release the GIL: blocks run side by side, one per core
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, _ in enumerate(pool.map(fill, starts), start=1):
            if progress is not None:
                progress(min(count, done * block), count)
    return lists


def _block_top(vectors: np.ndarray, start: int, stop: int, length: int) -> np.ndarray:
    """[b, L] the best other rows of rows start..stop, best first (ties: the lower row first)."""
    scores = vectors[start:stop] @ vectors.T  # [b, N]
    scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
    rows, columns = _candidates(scores, length)  # grouped by row, columns ascending
    order = np.lexsort((-scores[rows, columns], rows))  # by row, then best first; stable, so ties by column
    firsts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=stop - start))[:-1]])  # [b]
    return columns[order][firsts[:, None] + np.arange(length)]


def _candidates(scores: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a few times `length` scores per row, among them each row's best `length`.

    The L-th best score of every SAMPLE_STRIDE-th column is at most the row's L-th best, so the scores at or
    above it include the row's best L: the exact answer, for a partition of a quarter of the columns instead of
    all of them (the selection took more time than the matrix product).
    """
    sample = scores[:, ::SAMPLE_STRIDE]
    if sample.shape[1] <= length + 1:  # a small library: the exact threshold
        sample = scores
    threshold = np.partition(sample, sample.shape[1] - length, axis=1)[:, -length]  # [b]
    return np.nonzero(scores >= threshold[:, None])


def build_neighbours(table: EmbeddingTable, directory: Path, progress: Progress | None = None) -> bool:
    """Compute and store the lists of the (post-processed) `table`; False, storing nothing, above MAX_TRACKS.

    Lists of an earlier build are removed either way, so none outlives the embeddings it was made from.
    """
    if len(table) > MAX_TRACKS or len(table) < 2:
        for stale in [directory / MANIFEST_NAME, *directory.glob("owners.*npy"), *directory.glob("neighbours.*npy")]:
            stale.unlink(missing_ok=True)
        return False
    order = np.argsort(table.track_ids, kind="stable")  # owners stored sorted, found by binary search
    vectors = np.asarray(table.vectors)[order]
    lists = nearest_rows(vectors, LIST_LENGTH, progress)
    manifest = {
        "format": FORMAT_VERSION,
        "embeddings_key": embeddings_key(table),
        "count": len(table),
        "length": int(lists.shape[1]),
        "built_at": utc_now(),
        "lists": "neighbours.npy row i: rows of owners.npy nearest to track owners[i], best first",
    }
    writers = {"owners.npy": npy_writer(table.track_ids[order]), "neighbours.npy": npy_writer(lists)}
    commit_file_set(directory, MANIFEST_NAME, writers, manifest)
    return True


@dataclass(frozen=True, eq=False)
class NeighbourLists:
    """Track `owners[i]`'s nearest tracks are `owners[lists[i]]`, best first; `complete` when each list holds
    every other track (a small library)."""

    key: str
    owners: np.ndarray  # [N] int64, sorted
    lists: np.ndarray  # [N, L] int32, memory-mapped
    positions: IdLookup = field(init=False, repr=False)  # owner id -> its list

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", IdLookup(self.owners))

    @property
    def complete(self) -> bool:
        return self.lists.shape[1] == len(self.owners) - 1

    def of(self, track_id: int) -> np.ndarray | None:
        """The track ids nearest to `track_id`, best first, or None when it has no list."""
        position = self.positions.row(track_id)
        if position is None:
            return None
        return self.owners[np.asarray(self.lists[position], dtype=np.int64)]

    def nearest(
        self, track_id: int, table: EmbeddingTable, count: int, exclude: Collection[int]
    ) -> list[tuple[int, float]] | None:
        """What `Searcher.search(stored vector of track_id, count, exclude)` answers on `table` (the live rows of
        the embeddings the lists were computed from), or None when the list cannot tell (no list, or too few
        tracks left in it once the removed and excluded ones are taken out)."""
        ids = self.of(track_id)
        row = table.row_of(track_id)
        if ids is None or row is None:
            return None
        rows = table.rows_of(ids)  # [L] live rows, -1: removed from the library since
        keep = rows >= 0
        if exclude:
            keep &= ~_among(ids, exclude)
        rows = rows[keep][:count]  # the list's order is the cosines' order: the first `count` left are the best
        if len(rows) < count and not self.complete:
            return None
        vectors = np.asarray(table.vectors)
        query = normalise_rows(vectors[row][None, :])[0]  # as the searcher takes it
        scores = vectors[rows] @ query  # [C] exact cosines, as the search computes them (and ranks by)
        best = np.argsort(-scores, kind="stable")
        return list(zip(table.track_ids[rows[best]].tolist(), scores[best].tolist()))


def _among(ids: np.ndarray, wanted: Collection[int]) -> np.ndarray:
    """[L] bool: which of `ids` are in `wanted` (a seed and its copies are compared one by one: np.isin's set-up
    costs more than that)."""
    if len(wanted) > FEW_IDS:
        return np.isin(ids, np.fromiter(wanted, dtype=np.int64, count=len(wanted)))
    found = np.zeros(len(ids), dtype=bool)
    for track_id in wanted:
        found |= ids == track_id
    return found


def load_neighbours(directory: Path, key: str) -> NeighbourLists | None:
    """The stored lists when they were computed from the embeddings named `key`, else None."""

    def open_set(manifest: dict[str, Any], path_of: Callable[[str], Path]) -> NeighbourLists | None:
        if manifest.get("format") != FORMAT_VERSION or manifest.get("embeddings_key") != key:
            return None
        owners = np.load(path_of("owners.npy"), allow_pickle=False)
        lists = np.load(path_of("neighbours.npy"), mmap_mode="r", allow_pickle=False)
        count, length = int(manifest["count"]), int(manifest["length"])
        if owners.shape != (count,) or lists.shape != (count, length) or lists.dtype != np.int32:
            raise ValueError(f"files hold {owners.shape} owners and {lists.shape} {lists.dtype} lists")
        return NeighbourLists(key, owners, lists)

    return read_file_set(directory, MANIFEST_NAME, open_set, REMEDY)

"""Nearest-neighbour search over a library's embeddings: an Annoy index with a JSON sidecar, plus exact search.

The index covers the tracks embedded when it was built. Tracks embedded since (the delta) are searched exactly and
merged in; tracks removed or re-embedded since are filtered out of Annoy's answers. Similarity is always the cosine,
recomputed from the embedding table for the tracks returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from annoy import AnnoyIndex

from musimilar.embeddings import (
    EmbeddingTable,
    commit_file_set,
    normalise_rows,
    npy_writer,
    read_file_set,
    utc_now,
)
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.postprocess import fingerprint as postprocess_fingerprint
from musimilar.settings import IndexSettings

MANIFEST_NAME = "index.json"
FORMAT_VERSION = 1
INDEX_REMEDY = "run `musimilar index` to rebuild it"
SCORE_BLOCK = 1 << 24  # scores held at once by exact search (64 MiB of float32), whatever the library size
OVERFETCH_MARGIN = 10  # extra Annoy candidates, besides 2k, to make up for removed or changed tracks
ADD_PROGRESS_EVERY = 10_000

Progress = Callable[[str, int, int], None]  # (stage, done, total); stages "adding" then "building"


@dataclass(frozen=True, eq=False)
class IndexInfo:
    """What the sidecar says about an index: Annoy item i is track `item_track_ids[i]` at `item_versions[i]`."""

    dim: int
    metric: str
    trees: int
    count: int
    model_fingerprint: str
    built_at: str
    generation: int
    ann_path: Path
    item_track_ids: np.ndarray  # [count] int64
    item_versions: np.ndarray  # [count] int64, the track versions that were embedded at build time
    postprocess: str | None = None  # fingerprint of the post-processing the vectors went through (None: none)


def build_index(
    table: EmbeddingTable,
    directory: Path,
    trees: int,
    metric: str = "angular",
    progress: Progress | None = None,
    jobs: int = -1,
) -> IndexInfo:
    """Build an Annoy index of every row of `table` into `directory`, with its sidecar; `jobs` threads (-1: all)."""
    if len(table) == 0:
        raise NotReadyError("there are no embeddings to index; run `musimilar embed` first")
    assert table.versions is not None
    report = progress or (lambda stage, done, total: None)

    def write_ann(path: Path) -> None:
        ann = AnnoyIndex(table.dim, metric)
        ann.set_seed(0)  # same table, same trees: same index
        ann.on_disk_build(str(path))  # the forest grows in the file, not in RAM
        for item, vector in enumerate(table.vectors):
            ann.add_item(item, vector)
            if (item + 1) % ADD_PROGRESS_EVERY == 0:
                report("adding", item + 1, len(table))
        report("adding", len(table), len(table))
        report("building", 0, trees)
        ann.build(trees, n_jobs=jobs)
        ann.unload()
        report("building", trees, trees)

    items = np.stack([table.track_ids, table.versions], axis=1)  # [N, 2] int64: track id, version of item i
    manifest = {
        "format": FORMAT_VERSION,
        "dim": table.dim,
        "metric": metric,
        "trees": trees,
        "count": len(table),
        "model_fingerprint": table.model_fingerprint,
        "postprocess": postprocess_fingerprint(table.post),
        "built_at": utc_now(),
        "items": "items.npy row i: [track id, track version] of Annoy item i",
    }
    commit_file_set(directory, MANIFEST_NAME, {"index.ann": write_ann, "items.npy": npy_writer(items)}, manifest)
    info = load_index_info(directory)
    assert info is not None
    return info


def load_index_info(directory: Path) -> IndexInfo | None:
    """The sidecar of the index in `directory`, or None when there is none."""
    return read_file_set(directory, MANIFEST_NAME, _info_from, INDEX_REMEDY)


def _info_from(manifest: dict[str, Any], path_of: Callable[[str], Path]) -> IndexInfo:
    items = np.load(path_of("items.npy"), mmap_mode="r", allow_pickle=False)
    count = int(manifest["count"])
    if items.shape != (count, 2) or items.dtype != np.int64:
        raise ValueError(f"items.npy holds {items.shape} {items.dtype}, expected ({count}, 2) int64")
    ann_path = path_of("index.ann")
    if not ann_path.is_file():
        raise FileNotFoundError(2, "no such file", str(ann_path))
    return IndexInfo(
        dim=int(manifest["dim"]),
        metric=str(manifest["metric"]),
        trees=int(manifest["trees"]),
        count=count,
        model_fingerprint=str(manifest["model_fingerprint"]),
        built_at=str(manifest["built_at"]),
        generation=int(manifest["generation"]),
        ann_path=ann_path,
        item_track_ids=items[:, 0],
        item_versions=items[:, 1],
        postprocess=manifest.get("postprocess"),
    )


def _open_annoy(info: IndexInfo) -> AnnoyIndex:
    ann = AnnoyIndex(info.dim, info.metric)
    try:
        ann.load(str(info.ann_path), prefault=False)  # memory-mapped: pages are read as queries touch them
    except OSError as error:
        raise NotReadyError(f"{info.ann_path}: unreadable index ({error}); {INDEX_REMEDY}") from None
    if ann.get_n_items() != info.count:
        found = ann.get_n_items()
        raise NotReadyError(f"{info.ann_path}: holds {found} items, its sidecar says {info.count}; {INDEX_REMEDY}")
    return ann


def exact_search(
    vectors: np.ndarray, queries: np.ndarray, k: int, exclude_rows: Iterable[int] | np.ndarray = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of `vectors` by dot product with each query, best first, skipping `exclude_rows`.

    Returns (rows [Q, k'] int64, scores [Q, k'] float32), k' = min(k, rows left). With normalised inputs the scores
    are cosines. Queries go in blocks so at most SCORE_BLOCK scores are held at once.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))  # [Q, D]
    excluded = np.unique(np.asarray(list(exclude_rows) if not isinstance(exclude_rows, np.ndarray) else exclude_rows))
    excluded = excluded.astype(np.int64)
    kept = max(0, min(k, len(vectors) - len(excluded)))
    rows = np.empty((len(queries), kept), dtype=np.int64)
    scores = np.empty((len(queries), kept), dtype=np.float32)
    if kept == 0:
        return rows, scores
    block = max(1, SCORE_BLOCK // len(vectors))
    for start in range(0, len(queries), block):
        block_scores = queries[start : start + block] @ np.asarray(vectors).T  # [Qb, N]
        block_scores[:, excluded] = -np.inf
        top = np.argpartition(-block_scores, kept - 1, axis=1)[:, :kept]  # [Qb, k'] unordered
        top_scores = np.take_along_axis(block_scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        rows[start : start + block] = np.take_along_axis(top, order, axis=1)
        scores[start : start + block] = np.take_along_axis(top_scores, order, axis=1)
    return rows, scores


class Searcher:
    """Top-k cosine search over an embedding table; made by `open_searcher`."""

    def __init__(
        self,
        table: EmbeddingTable,
        settings: IndexSettings,
        info: IndexInfo | None,
        ann: AnnoyIndex | None,
        item_rows: np.ndarray | None,
        delta_rows: np.ndarray,
    ) -> None:
        self.table = table
        self.settings = settings
        self.info = info
        self._ann = ann
        self._item_rows = item_rows  # [count] int64: table row of Annoy item i, -1 if removed or changed since
        self._delta_rows = delta_rows  # [M] int64: table rows the index does not cover (as they are now)
        self._delta_vectors = table.vectors[delta_rows] if ann is not None else None  # [M, D]

    @property
    def mode(self) -> str:
        """Either "annoy" (the index plus an exact search of the delta) or "exact" (every track compared)."""
        return "exact" if self._ann is None else "annoy"

    @property
    def delta_size(self) -> int:
        """Tracks the index does not cover: embedded or changed since the build (all of them without an index)."""
        return len(self._delta_rows)

    @property
    def rebuild_due(self) -> bool:
        """True when so many tracks are outside the index that it should be rebuilt (never for small libraries)."""
        return len(self.table) >= self.settings.exact_below and self.delta_size > self.settings.delta_limit

    def search(self, vector: np.ndarray, k: int, exclude_track_ids: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The k tracks most similar to `vector`, best first, as (track id, cosine similarity)."""
        return self.search_many(np.asarray(vector)[None, :], k, exclude_track_ids)[0]

    def search_many(
        self, vectors: np.ndarray, k: int, exclude_track_ids: Iterable[int] = ()
    ) -> list[list[tuple[int, float]]]:
        """`search` for each row of `vectors` ([Q, D]), excluding the same tracks for all."""
        queries = normalise_rows(np.atleast_2d(vectors))  # [Q, D]
        if queries.shape[1] != self.table.dim:
            raise MusimilarError(f"query vectors are {queries.shape[1]}-d, the embeddings {self.table.dim}-d")
        excluded_rows = self.table.rows_of(np.unique(np.fromiter(exclude_track_ids, dtype=np.int64)))
        excluded_rows = excluded_rows[excluded_rows >= 0]
        if self._ann is None:
            rows, scores = exact_search(self.table.vectors, queries, k, excluded_rows)
            hits = list(zip(rows, scores))
        else:
            hits = self._search_index(queries, k, excluded_rows)
        track_ids = self.table.track_ids
        return [[(int(track_ids[r]), float(s)) for r, s in zip(rows, scores)] for rows, scores in hits]

    def _search_index(
        self, queries: np.ndarray, k: int, excluded_rows: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Annoy candidates still valid, merged with an exact search of the delta, ranked by exact cosine."""
        assert self._delta_vectors is not None
        delta_excluded = np.flatnonzero(np.isin(self._delta_rows, excluded_rows))
        delta_hits, _ = exact_search(self._delta_vectors, queries, k, delta_excluded)  # [Q, k'] delta positions
        hits = []
        for query, delta_positions in zip(queries, delta_hits):
            candidates = np.concatenate([self._annoy_rows(query, k, excluded_rows), self._delta_rows[delta_positions]])
            scores = self.table.vectors[candidates] @ query  # [C] exact cosines
            best = np.argsort(-scores, kind="stable")[:k]
            hits.append((candidates[best], scores[best]))
        return hits

    def _annoy_rows(self, query: np.ndarray, k: int, excluded_rows: np.ndarray) -> np.ndarray:
        """Table rows of Annoy's nearest items that are unchanged and not excluded; fetches more until k or all."""
        assert self._ann is not None and self._item_rows is not None
        total = len(self._item_rows)
        wanted = min(total, 2 * k + len(excluded_rows) + OVERFETCH_MARGIN)
        while True:
            items = self._ann.get_nns_by_vector(query, wanted, search_k=self.settings.search_k)
            rows = self._item_rows[np.asarray(items, dtype=np.int64)]
            rows = rows[(rows >= 0) & ~np.isin(rows, excluded_rows)]
            if len(rows) >= k or len(items) < wanted or wanted == total:
                return rows
            wanted = min(total, wanted * 4)


def open_searcher(
    table: EmbeddingTable, index_directory: Path, settings: IndexSettings, force_exact: bool = False
) -> Searcher:
    """A searcher over `table`, using the index in `index_directory` when the library is large enough to need it.

    Raises NotReadyError when the index would be used but belongs to another model or embedding size. Without an
    index, below `settings.exact_below` tracks, or with `force_exact`, every query is compared with every track.
    """
    exact = force_exact or len(table) < settings.exact_below
    info = load_index_info(index_directory)
    stale = _staleness(info, table) if info is not None else None
    if stale is not None and not exact:
        raise NotReadyError(f"{index_directory}: {stale}; {INDEX_REMEDY}")
    if info is None or stale is not None:
        return Searcher(table, settings, None, None, None, np.arange(len(table), dtype=np.int64))
    item_rows, delta_rows = _coverage(info, table)
    ann = None if exact else _open_annoy(info)
    return Searcher(table, settings, info, ann, item_rows, delta_rows)


def _staleness(info: IndexInfo, table: EmbeddingTable) -> str | None:
    """Why the index cannot serve this table, or None."""
    if info.model_fingerprint != table.model_fingerprint:
        return (
            f"the index was built for model {info.model_fingerprint}, "
            f"the embeddings come from model {table.model_fingerprint}"
        )
    if info.dim != table.dim:
        return f"the index holds {info.dim}-d vectors, the embeddings are {table.dim}-d"
    if info.metric != "angular":
        return f"the index uses the {info.metric} metric, cosine search needs angular"
    if info.postprocess != postprocess_fingerprint(table.post):
        return "the index was built on other retrieval post-processing than the embeddings now carry"
    return None


def _coverage(info: IndexInfo, table: EmbeddingTable) -> tuple[np.ndarray, np.ndarray]:
    """(table row of each Annoy item, -1 when removed or re-embedded; table rows not covered by the index)."""
    assert table.versions is not None
    rows = table.rows_of(np.asarray(info.item_track_ids))  # [count]
    present = rows >= 0
    present[present] &= table.versions[rows[present]] == np.asarray(info.item_versions)[present]
    item_rows = np.where(present, rows, -1)
    covered = np.zeros(len(table), dtype=bool)
    covered[item_rows[present]] = True
    return item_rows, np.flatnonzero(~covered).astype(np.int64)


def exact_neighbours(table: EmbeddingTable, rows: np.ndarray, k: int) -> np.ndarray:
    """[Q, k] table rows of the true nearest neighbours of each query row, the query's own row excluded."""
    return np.stack([exact_search(table.vectors, table.vectors[row], k, exclude_rows=[row])[0][0] for row in rows])


def recall_at_k(searcher: Searcher, table: EmbeddingTable, rows: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of the true neighbours (`exact_neighbours`) that `searcher` finds, each query's own track excluded."""
    hits = 0
    for row, expected in zip(rows, truth):
        found = searcher.search(table.vectors[row], k, exclude_track_ids=[int(table.track_ids[row])])
        hits += len(set(table.track_ids[expected].tolist()) & {track for track, _ in found})
    return hits / max(1, truth.size)


def measure_recall(table: EmbeddingTable, searcher: Searcher, k: int = 10, sample: int = 1000, seed: int = 0) -> float:
    """Recall@k of `searcher` against exact search, querying with a sample of the table's own vectors."""
    if len(table) < 2:
        return 1.0
    rows = np.sort(np.random.default_rng(seed).choice(len(table), size=min(sample, len(table)), replace=False))
    return recall_at_k(searcher, table, rows, exact_neighbours(table, rows, k), k)

"""The Annoy index, its sidecar, exact search, and the delta of tracks embedded after a build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musimilar import index as index_module
from musimilar.embeddings import EmbeddingTable, merge_tables, normalise_rows
from musimilar.errors import NotReadyError
from musimilar.index import (
    MANIFEST_NAME,
    build_index,
    exact_search,
    load_index_info,
    measure_recall,
    open_searcher,
)
from musimilar.settings import IndexSettings

DIM = 64
TREES = 10
ANNOY = IndexSettings(trees=TREES, exact_below=0, delta_limit=5)


def clustered_table(count: int, dim: int = DIM, clusters: int = 50, seed: int = 0, fingerprint: str = "model-a"):
    """Gaussian clusters on the unit sphere, like embeddings of a library with a few styles."""
    rng = np.random.default_rng(seed)
    centres = normalise_rows(rng.normal(size=(clusters, dim)))
    points = centres[rng.integers(0, clusters, size=count)] + rng.normal(scale=0.6 / np.sqrt(dim), size=(count, dim))
    track_ids = np.arange(1000, 1000 + count, dtype=np.int64)
    return EmbeddingTable(track_ids, normalise_rows(points), fingerprint, rng.integers(1, 1 << 30, size=count))


@pytest.fixture(scope="module")
def table() -> EmbeddingTable:
    return clustered_table(5000)


@pytest.fixture(scope="module")
def index_dir(table: EmbeddingTable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("index")
    build_index(table, directory, trees=TREES)
    return directory


def slow_top_k(vectors: np.ndarray, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> list[int]:
    scored = sorted(((float(vectors[row] @ query), row) for row in range(len(vectors)) if row not in exclude))
    return [row for _, row in scored[::-1][:k]]


def test_build_writes_index_and_sidecar(table: EmbeddingTable, tmp_path: Path) -> None:
    stages = []
    info = build_index(table, tmp_path, trees=TREES, progress=lambda stage, done, total: stages.append(stage))
    assert stages[0] == "adding" and stages[-1] == "building"
    sidecar = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert {key: sidecar[key] for key in ("dim", "metric", "trees", "count", "model_fingerprint")} == {
        "dim": DIM,
        "metric": "angular",
        "trees": TREES,
        "count": len(table),
        "model_fingerprint": "model-a",
    }
    assert "built_at" in sidecar
    items = np.load(tmp_path / sidecar["files"]["items.npy"], allow_pickle=False)
    np.testing.assert_array_equal(items, np.stack([table.track_ids, table.versions], axis=1))
    assert (tmp_path / sidecar["files"]["index.ann"]).stat().st_size > 0
    assert info.count == len(table) and info.ann_path.name == sidecar["files"]["index.ann"]
    loaded = load_index_info(tmp_path)
    assert loaded is not None and loaded.generation == info.generation and loaded.trees == TREES
    rebuilt = build_index(table, tmp_path, trees=2)  # a rebuild replaces the old files
    assert rebuilt.generation == info.generation + 1 and not info.ann_path.exists()


def test_no_index_info(tmp_path: Path) -> None:
    assert load_index_info(tmp_path) is None


def test_exact_search_matches_slow_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "SCORE_BLOCK", 300)  # several query blocks
    small = clustered_table(200, dim=8, seed=3)
    queries = normalise_rows(np.random.default_rng(1).normal(size=(7, 8)))
    rows, scores = exact_search(small.vectors, queries, 5, exclude_rows=[3, 4, 3])
    for query, found, found_scores in zip(queries, rows, scores):
        assert found.tolist() == slow_top_k(small.vectors, query, 5, {3, 4})
        np.testing.assert_allclose(found_scores, small.vectors[found] @ query, rtol=1e-6)
    rows, _ = exact_search(small.vectors[:3], queries, 10, exclude_rows=[0])
    assert rows.shape == (7, 2)


def test_annoy_recall_against_exact(table: EmbeddingTable, index_dir: Path) -> None:
    searcher = open_searcher(table, index_dir, ANNOY)
    assert searcher.mode == "annoy" and searcher.delta_size == 0 and not searcher.rebuild_due
    assert measure_recall(table, searcher, k=10, sample=300) >= 0.95


def test_results_are_exact_cosines(table: EmbeddingTable, index_dir: Path) -> None:
    searcher = open_searcher(table, index_dir, ANNOY)
    query = np.random.default_rng(5).normal(size=DIM).astype(np.float32) * 3.0  # not normalised
    results = searcher.search(query, 10)
    unit = query / np.linalg.norm(query)
    for track_id, similarity in results:
        row = table.row_of(track_id)
        assert similarity == pytest.approx(float(table.vectors[row] @ unit), abs=1e-6)
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)
    assert searcher.search_many(np.stack([query, query]), 10) == [results, results]


def test_stale_index_is_refused(table: EmbeddingTable, index_dir: Path) -> None:
    retrained = EmbeddingTable(table.track_ids, table.vectors, "model-b", table.versions)
    with pytest.raises(NotReadyError, match="musimilar index"):
        open_searcher(retrained, index_dir, ANNOY)
    resized = clustered_table(100, dim=32)
    with pytest.raises(NotReadyError, match="32-d"):
        open_searcher(resized, index_dir, ANNOY)
    # A library small enough for exact search does not need the index, stale or not.
    small = open_searcher(retrained.subset(np.arange(100)), index_dir, IndexSettings(exact_below=1000))
    assert small.mode == "exact" and small.info is None


def test_track_added_after_build_is_found(table: EmbeddingTable, index_dir: Path) -> None:
    newcomer = clustered_table(1, seed=9)
    newcomer = EmbeddingTable(np.array([99]), newcomer.vectors, "model-a", np.array([1]))
    searcher = open_searcher(merge_tables([table, newcomer]), index_dir, ANNOY)
    assert searcher.mode == "annoy" and searcher.delta_size == 1
    track_id, similarity = searcher.search(newcomer.vectors[0], 5)[0]
    assert track_id == 99 and similarity == pytest.approx(1.0, abs=1e-5)


def test_removed_tracks_never_appear(table: EmbeddingTable, index_dir: Path) -> None:
    removed = table.track_ids[:200]
    searcher = open_searcher(table.subset(~np.isin(table.track_ids, removed)), index_dir, ANNOY)
    results = searcher.search_many(table.vectors[:200], 10)
    assert all(len(found) == 10 for found in results)
    assert not {track for found in results for track, _ in found} & set(removed.tolist())


def test_changed_track_appears_with_its_new_vector_only(table: EmbeddingTable, index_dir: Path) -> None:
    changed_id = int(table.track_ids[0])
    old_vector = table.vectors[0].copy()
    new_vector = normalise_rows(np.random.default_rng(11).normal(size=(1, DIM)))
    changed = EmbeddingTable(np.array([changed_id]), new_vector, "model-a", table.versions[:1] + 1)
    updated = merge_tables([table, changed])
    searcher = open_searcher(updated, index_dir, ANNOY)
    assert searcher.delta_size == 1
    for track_id, similarity in searcher.search(old_vector, 10):
        if track_id == changed_id:
            assert similarity == pytest.approx(float(new_vector[0] @ old_vector), abs=1e-6)
    assert searcher.search(new_vector[0], 1) == [(changed_id, pytest.approx(1.0, abs=1e-5))]


def test_excluded_tracks_are_skipped(table: EmbeddingTable, index_dir: Path) -> None:
    searcher = open_searcher(table, index_dir, ANNOY)
    seed_id = int(table.track_ids[42])
    first = searcher.search(table.vectors[42], 5)
    assert first[0][0] == seed_id
    without = searcher.search(table.vectors[42], 5, exclude_track_ids=[seed_id, first[1][0]])
    assert {seed_id, first[1][0]}.isdisjoint(track for track, _ in without) and len(without) == 5


def test_small_library_is_searched_exactly(table: EmbeddingTable, index_dir: Path) -> None:
    small = table.subset(np.arange(300))
    searcher = open_searcher(small, index_dir, IndexSettings(exact_below=1000))
    assert searcher.mode == "exact" and not searcher.rebuild_due
    query = small.vectors[7]
    expected = slow_top_k(small.vectors, query, 4, {7})
    found = searcher.search(query, 4, exclude_track_ids=[int(small.track_ids[7])])
    assert [track for track, _ in found] == small.track_ids[expected].tolist()
    assert measure_recall(small, searcher, k=5, sample=50) == 1.0


def test_forced_or_missing_index_is_exact(table: EmbeddingTable, index_dir: Path, tmp_path: Path) -> None:
    forced = open_searcher(table, index_dir, ANNOY, force_exact=True)
    assert forced.mode == "exact" and forced.delta_size == 0
    missing = open_searcher(table, tmp_path, ANNOY)
    assert missing.mode == "exact" and missing.delta_size == len(table) and missing.rebuild_due


def test_rebuild_is_due_past_the_delta_limit(table: EmbeddingTable, index_dir: Path) -> None:
    newcomers = clustered_table(6, seed=4)
    newcomers = EmbeddingTable(np.arange(10, 16), newcomers.vectors, "model-a", newcomers.versions)
    searcher = open_searcher(merge_tables([table, newcomers]), index_dir, ANNOY)
    assert searcher.delta_size == 6 and searcher.rebuild_due

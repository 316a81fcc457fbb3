"""Precomputed neighbour lists: the exact top of each track, the same answers as a live search, never stale."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from musimilar import neighbours
from musimilar.catalog import Catalog
from musimilar.embeddings import EmbeddingTable, fit_post, load_embeddings, normalise_rows, save_embeddings
from musimilar.home import Home
from musimilar.library import Library
from musimilar.neighbours import build_neighbours, embeddings_key, load_neighbours, nearest_rows
from musimilar.recommend import Diversity
from musimilar.settings import RetrievalSettings

EXTRA_TRACKS = 600  # more than a list holds (LIST_LENGTH), so lists are partial as in a large library
ARTISTS = 30
CENTRES = 40


def slow_lists(vectors: np.ndarray, length: int) -> np.ndarray:
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :length]


def test_nearest_rows_are_the_exact_top(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbours, "SCORE_BLOCK", 7 * 300)  # several blocks
    vectors = normalise_rows(np.random.default_rng(0).normal(size=(300, 16)))
    assert np.array_equal(nearest_rows(vectors, 20), slow_lists(vectors, 20))
    assert nearest_rows(vectors[:5], 20).shape == (5, 4)  # a small library: every other track


def test_ties_at_the_cut_still_give_exactly_the_list_length() -> None:
    vectors = normalise_rows(np.repeat(np.eye(4, dtype=np.float32), 5, axis=0))  # groups of 5 identical rows
    lists = nearest_rows(vectors, 6)
    assert lists.shape == (20, 6)
    assert all(set(lists[row, :4]) == {r for r in range(row // 5 * 5, row // 5 * 5 + 5)} - {row} for row in range(20))


def add_tracks(home: Home, count: int, seed: int) -> None:
    """`count` catalog rows with artist and album labels (no audio: they are answered from stored vectors)."""
    rng = np.random.default_rng(seed)
    with sqlite3.connect(home.catalog_path) as db:
        first = db.execute("SELECT MAX(id) FROM tracks").fetchone()[0] + 1
        rows = []
        for track_id in range(first, first + count):
            artist = int(rng.integers(ARTISTS))
            labels = json.dumps({"artist": f"artist-{artist}", "album": f"album-{artist}-{track_id % 3}"})
            rows.append((track_id, f"/nowhere/{track_id}.ogg", f"fp-{track_id}", labels))
        db.executemany(
            "INSERT INTO tracks (id, path, size, mtime_ns, fingerprint, status, labels, added_at, updated_at)"
            " VALUES (?, ?, 1, 0, ?, 'ok', ?, 0, 0)",
            rows,
        )


def embed_synthetic(home: Home, seed: int) -> EmbeddingTable:
    """Clustered vectors for every catalog track, with whitening and CSLS, as `embed` stores them."""
    stored = load_embeddings(home.embeddings_dir)
    with Catalog(home.catalog_path) as catalog:
        tracks = catalog.tracks()
    rng = np.random.default_rng(seed)
    centres = normalise_rows(rng.normal(size=(CENTRES, stored.dim)))
    noise = normalise_rows(rng.normal(size=(len(tracks), stored.dim)))
    vectors = normalise_rows(centres[rng.integers(CENTRES, size=len(tracks))] + 0.6 * noise)
    table = EmbeddingTable([t.id for t in tracks], vectors, stored.model_fingerprint, [t.version for t in tracks])
    table = fit_post(table, RetrievalSettings())
    save_embeddings(home.embeddings_dir, table)
    return table


@pytest.fixture(scope="module")
def home(trained_home, tmp_path_factory: pytest.TempPathFactory) -> Home:
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path_factory.mktemp("neighbours") / "home")))
    add_tracks(copy, EXTRA_TRACKS, seed=1)
    embed_synthetic(copy, seed=2)
    with Library.open(copy.root, create=False) as library:
        library.build_index()
    return copy


def answers(library: Library, seeds: list[int], k: int, diversity: Diversity) -> list[list[tuple[int, float]]]:
    return [
        [(r.track_id, r.similarity) for r in library.recommend([str(s)], k=k, diversity=diversity, exact=True)]
        for s in seeds
    ]


def assert_same(found: list[list[tuple[int, float]]], expected: list[list[tuple[int, float]]]) -> None:
    assert [[t for t, _ in row] for row in found] == [[t for t, _ in row] for row in expected]
    assert np.allclose([s for row in found for _, s in row], [s for row in expected for _, s in row], atol=1e-6)


@pytest.mark.parametrize(
    "k, diversity",
    [(10, Diversity()), (25, Diversity()), (60, Diversity()), (10, Diversity(max_per_artist=1, max_per_album=1))],
)
def test_lists_give_the_answers_of_the_exact_search(home: Home, k: int, diversity: Diversity) -> None:
    with Library.open(home.root, create=False) as library:
        ready = library.ready(exact=True)
        assert ready.neighbours is not None and ready.table.post.radius is not None  # CSLS re-ranks here
        seeds = [int(t) for t in ready.table.track_ids[::37]]
        with_lists = answers(library, seeds, k, diversity)
        ready.neighbours = None
        assert_same(with_lists, answers(library, seeds, k, diversity))


def test_lists_answer_without_a_search(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    with Library.open(home.root, create=False) as library:
        ready = library.ready()

        def no_search(*args: object, **kwargs: object) -> None:
            raise AssertionError("the list should have answered")

        monkeypatch.setattr(ready.searcher, "search", no_search)
        assert len(library.recommend([str(int(ready.table.track_ids[5]))], k=10)) == 10
        with pytest.raises(AssertionError, match="should have answered"):
            library.recommend([str(int(ready.table.track_ids[5]))], k=100)  # more than a list holds: searched


def test_lists_of_other_embeddings_are_ignored(home: Home, tmp_path: Path) -> None:
    copy = Home.open(Path(shutil.copytree(home.root, tmp_path / "home")))
    old = load_embeddings(copy.embeddings_dir)
    add_tracks(copy, 1, seed=3)
    table = embed_synthetic(copy, seed=2)  # the same vectors for the old tracks, one new track
    assert load_neighbours(copy.index_dir, embeddings_key(old)) is not None
    assert load_neighbours(copy.index_dir, embeddings_key(table)) is None
    with Library.open(copy.root, create=False) as library:
        assert library.ready().neighbours is None
        new = int(table.track_ids[-1])
        nearest = library.recommend([str(new)], k=1, exact=True)[0].track_id
        assert new in [r.track_id for r in library.recommend([str(nearest)], k=50, exact=True)]


def test_removed_tracks_never_come_from_a_list(home: Home, tmp_path: Path) -> None:
    copy = Home.open(Path(shutil.copytree(home.root, tmp_path / "home")))
    with Library.open(copy.root, create=False) as library:
        seed = int(library.ready().table.track_ids[10])
        before = [r.track_id for r in library.recommend([str(seed)], k=10)]
        with sqlite3.connect(copy.catalog_path) as db:
            db.execute("UPDATE tracks SET status = 'missing' WHERE id = ?", (before[0],))
        library.close()
        ready = library.ready()
        assert ready.neighbours is not None  # still these embeddings: the list serves, less the removed track
        after = [r.track_id for r in library.recommend([str(seed)], k=10)]
        assert after[:9] == before[1:] and before[0] not in after


def test_above_the_size_limit_no_lists_are_kept(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = Home.open(Path(shutil.copytree(home.root, tmp_path / "home")))
    monkeypatch.setattr(neighbours, "MAX_TRACKS", 10)
    table = load_embeddings(copy.embeddings_dir).post_processed()
    assert not build_neighbours(table, copy.index_dir)
    assert load_neighbours(copy.index_dir, embeddings_key(table)) is None
    assert not list(copy.index_dir.glob("neighbours*")) and not list(copy.index_dir.glob("owners*"))

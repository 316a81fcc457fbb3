"""Retrieval post-processing: whitening, CSLS against loop references, hubness, storage and identical queries."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musimilar.embeddings import EmbeddingTable, fit_post, load_embeddings, save_embeddings
from musimilar.home import Home
from musimilar.library import Library
from musimilar.postprocess import csls_neighbours, fit, fit_whitening, hubness, neighbourhood_radius, unit_rows
from musimilar.settings import RetrievalSettings


def unit_cloud(count: int = 60, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stretched = rng.normal(size=(count, dim)) * np.linspace(5, 0.5, dim) + 3.0  # off-centre, unequal axes
    return unit_rows(stretched)


def test_full_whitening_makes_the_covariance_the_identity() -> None:
    vectors = unit_cloud()
    mean, projection = fit_whitening(vectors, None, shrinkage=0.0)
    white = (vectors - mean) @ projection
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(projection.shape[1]), atol=1e-3)


def test_full_shrinkage_only_centres_and_rotates_and_dim_keeps_the_first_axes() -> None:
    vectors = unit_cloud()
    mean, projection = fit_whitening(vectors, None, shrinkage=1.0)
    centred = vectors - mean
    turned = centred @ projection
    ratio = np.linalg.norm(turned, axis=1) / np.linalg.norm(centred, axis=1)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)  # distances scaled alike: a rotation
    assert fit_whitening(vectors, 3, 0.5)[1].shape == (8, 3)


def test_radius_and_csls_neighbours_match_loop_references() -> None:
    vectors = unit_cloud(30, 6, seed=1)
    k = 4
    radius = neighbourhood_radius(vectors, k)
    sims = vectors @ vectors.T
    for row in range(len(vectors)):
        others = np.delete(sims[row], row)
        assert radius[row] == pytest.approx(np.sort(others)[-k:].mean(), abs=1e-5)
    groups = np.repeat(np.arange(10), 3)
    groups[:3] = -1  # unknown groups are never filtered
    indices, found = csls_neighbours(vectors, radius, 5, groups)
    for row in range(len(vectors)):
        candidates = [j for j in range(len(vectors)) if j != row and (groups[row] == -1 or groups[j] != groups[row])]
        expected = sorted(candidates, key=lambda j: -(2 * sims[row, j] - radius[j]))[:5]
        assert list(indices[row]) == expected
        np.testing.assert_allclose(found[row], sims[row, expected], atol=1e-6)


def test_hubness_counts_the_most_frequent_neighbour() -> None:
    lists = np.array([[4, 0], [4, 0], [4, 1], [4, 2], [3, 2]])  # track 4 is in four lists of five
    figures = hubness(lists, 5)
    assert figures["top_hub_share"] == pytest.approx(0.8)
    assert figures["k_occurrence_skewness"] > 0
    assert hubness(np.array([[1], [2], [0]]), 3)["k_occurrence_skewness"] == 0.0


def test_fit_is_none_when_nothing_is_asked_and_identity_for_csls_alone() -> None:
    vectors = unit_cloud()
    few = fit(vectors[:20], True, None, 0.5, 0)  # too few tracks to whiten
    np.testing.assert_allclose(few.apply(vectors[:20]), vectors[:20], atol=1e-6)
    assert fit(vectors, False, None, 0.5, 0) is None
    only_csls = fit(vectors, False, None, 0.5, 5)
    np.testing.assert_allclose(only_csls.apply(vectors), vectors, atol=1e-6)
    assert only_csls.radius.shape == (len(vectors),)


def test_post_processing_is_stored_with_the_embeddings(tmp_path: Path) -> None:
    vectors = unit_cloud()
    table = EmbeddingTable(np.arange(len(vectors)), vectors, "abc")
    settings = RetrievalSettings(whiten=True, whiten_dim=4, whiten_shrinkage=0.2, csls_k=5)
    save_embeddings(tmp_path, fit_post(table, settings))
    loaded = load_embeddings(tmp_path)
    np.testing.assert_allclose(loaded.vectors, vectors)  # the raw vectors are kept
    assert loaded.post.describe() == {"whiten_dim": 4, "shrinkage": 0.2, "csls_k": 5}
    searched = loaded.post_processed()
    assert searched.dim == 4
    np.testing.assert_allclose(np.linalg.norm(searched.vectors, axis=1), 1, atol=1e-5)
    part = loaded.subset(np.arange(10, 20))
    np.testing.assert_allclose(part.post.radius, loaded.post.radius[10:20])
    save_embeddings(tmp_path, fit_post(loaded, None))
    assert load_embeddings(tmp_path).post is None


def test_queries_from_outside_get_the_same_post_processing(
    trained_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("musimilar.postprocess.MIN_TRACKS_TO_WHITEN", 2)  # the shared library has 32 tracks
    home, _, tracks = trained_home
    shutil.copytree(home.root, tmp_path / "home")
    flags = {"retrieval.whiten": True, "retrieval.whiten_dim": 16, "retrieval.csls_k": 5, "embed.device": "cpu"}
    with Library.open(tmp_path / "home", flags=flags) as library:
        library.embed()  # refits the post-processing to the stored embeddings
        library.build_index()
        ready = library.ready()
        assert ready.table.dim == 16 and ready.table.post.radius is not None
        path = Path(tracks[0].path) if hasattr(tracks[0], "path") else Path(tracks[0])
        track = ready.catalog.track_by_path(path.resolve())
        stored = ready.stored_vector(track.id)
        embedded = ready._embed_path(path)  # what an outside file with the same audio gets
        assert embedded.shape == stored.shape == (16,)
        assert float(stored @ embedded) > 0.99  # decoding the file again differs from the cache only slightly
        answers = library.recommend([str(track.id)], k=5)
        assert len(answers) == 5 and track.id not in [a.track_id for a in answers]
    assert Home.open(tmp_path / "home").index_dir.is_dir()

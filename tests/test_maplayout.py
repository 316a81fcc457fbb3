"""Map layouts: PCA against a slow reference, caching per embeddings, and what a map page holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musimilar.browse import TrackEntry
from musimilar.embeddings import EmbeddingTable, normalise_rows
from musimilar.errors import MusimilarError
from musimilar.maplayout import layout_key, library_layout, pca_layout
from musimilar.mapview import map_payload


def table_of(count: int, dim: int = 16, seed: int = 0, fingerprint: str = "model-a") -> EmbeddingTable:
    vectors = normalise_rows(np.random.default_rng(seed).normal(size=(count, dim)))
    return EmbeddingTable(np.arange(1, count + 1), vectors, fingerprint)


def test_pca_matches_an_svd_reference() -> None:
    vectors = np.random.default_rng(1).normal(size=(200, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    xy, variance = pca_layout(vectors)
    centred = vectors - vectors.mean(axis=0)
    _, singular, right = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    reference = centred @ right[:2].T
    for axis in range(2):  # the sign of a principal axis is arbitrary
        error = min(np.abs(xy[:, axis] - reference[:, axis]).max(), np.abs(xy[:, axis] + reference[:, axis]).max())
        assert error < 1e-3
    shares = singular**2 / (singular**2).sum()
    assert variance == pytest.approx((shares[0], shares[1]), abs=1e-4)


def test_a_layout_is_cached_until_the_embeddings_change(tmp_path: Path) -> None:
    table = table_of(50)
    first = library_layout(tmp_path, table)
    assert len(list((tmp_path / "map").glob("pca-*.npz"))) == 1
    again = library_layout(tmp_path, table)
    assert again.key == first.key and np.array_equal(again.xy, first.xy)
    grown = table_of(51)
    assert layout_key(grown, "pca") != first.key
    assert layout_key(table_of(50, fingerprint="model-b"), "pca") != first.key
    assert len(library_layout(tmp_path, grown).track_ids) == 51


def test_a_damaged_cache_is_computed_again(tmp_path: Path) -> None:
    table = table_of(20)
    first = library_layout(tmp_path, table)
    (tmp_path / "map" / f"{first.key}.npz").write_bytes(b"not a layout")
    assert np.allclose(library_layout(tmp_path, table).xy, first.xy)


def test_unknown_method_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MusimilarError, match="unknown map method"):
        library_layout(tmp_path, table_of(5), "tsne")


def test_the_payload_codes_labels_and_drops_tracks_gone_from_the_catalog(tmp_path: Path) -> None:
    layout = library_layout(tmp_path, table_of(4))
    tracks = {
        1: TrackEntry(1, "/m/rock/a.mp3", {"folder": "rock", "artist": "X"}, 3.0),
        2: TrackEntry(2, "/m/jazz/b.mp3", {"folder": "jazz"}, 3.0),
        3: TrackEntry(3, "/m/rock/c.mp3", {"folder": "rock"}, 3.0),
    }
    payload = json.loads(json.dumps(map_payload(layout, tracks).as_dict()))
    assert payload["track_ids"] == [1, 2, 3] and payload["count"] == 3
    assert payload["labels"]["folder"] == {"values": ["rock", "jazz"], "codes": [0, 1, 0]}
    assert payload["labels"]["artist"] == {"values": ["X"], "codes": [0, -1, -1]}
    assert payload["names"][0] == "X – a" and "variance" in payload["caption"]


def test_umap_without_its_extra_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(MusimilarError, match=r"musimilar\[map\]"):
        library_layout(tmp_path, table_of(30), "umap")

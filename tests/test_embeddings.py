"""Stored embeddings: round trip without pickles, the commit protocol, shards and upserts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musimilar.embeddings import (
    MANIFEST_NAME,
    EmbeddingTable,
    load_embeddings,
    merge_tables,
    normalise_rows,
    save_embeddings,
)
from musimilar.errors import MusimilarError, NotReadyError


def make_table(count: int = 50, dim: int = 8, fingerprint: str = "model-a", first_id: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    track_ids = np.arange(first_id, first_id + count, dtype=np.int64)
    versions = rng.integers(0, 1 << 40, size=count)
    return EmbeddingTable(track_ids, normalise_rows(rng.normal(size=(count, dim))), fingerprint, versions)


def assert_same(left: EmbeddingTable, right: EmbeddingTable) -> None:
    assert left.model_fingerprint == right.model_fingerprint
    np.testing.assert_array_equal(left.track_ids, right.track_ids)
    np.testing.assert_array_equal(left.versions, right.versions)
    np.testing.assert_array_equal(left.vectors, right.vectors)


def test_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    table = make_table()
    save_embeddings(tmp_path, table)
    loaded = load_embeddings(tmp_path)
    assert loaded is not None
    assert_same(loaded, table)
    assert isinstance(loaded.vectors, np.memmap)
    assert loaded.vectors.dtype == np.float32 and loaded.track_ids.dtype == np.int64
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["dim"] == 8 and manifest["count"] == 50 and manifest["model_fingerprint"] == "model-a"
    assert "written_at" in manifest
    for name in manifest["files"].values():
        np.load(tmp_path / name, allow_pickle=False)  # plain arrays: loadable with pickles refused
    in_memory = load_embeddings(tmp_path, mmap=False)
    assert in_memory is not None and not isinstance(in_memory.vectors, np.memmap)


def test_nothing_stored_loads_as_none(tmp_path: Path) -> None:
    assert load_embeddings(tmp_path) is None
    assert load_embeddings(tmp_path / "absent") is None


def test_empty_table_round_trip(tmp_path: Path) -> None:
    save_embeddings(tmp_path, make_table(count=0))
    loaded = load_embeddings(tmp_path)
    assert loaded is not None and len(loaded) == 0 and loaded.dim == 8


def test_overwrite_keeps_only_the_new_generation(tmp_path: Path) -> None:
    save_embeddings(tmp_path, make_table(seed=1))
    newer = make_table(count=30, seed=2)
    save_embeddings(tmp_path, newer)
    loaded = load_embeddings(tmp_path)
    assert loaded is not None
    assert_same(loaded, newer)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST_NAME, "vectors.2.npy", "track_ids.2.npy", "versions.2.npy"]
    )


def test_interrupted_write_leaves_the_old_set_readable(tmp_path: Path) -> None:
    old = make_table(seed=1)
    save_embeddings(tmp_path, old)
    # What a crash during the next save leaves behind: temp files, and complete files of a generation never committed.
    (tmp_path / ".vectors.2.npy.x1y2.tmp").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "vectors.2.npy").write_bytes(b"garbage")
    np.save(tmp_path / "track_ids.2.npy", np.arange(3))
    loaded = load_embeddings(tmp_path)
    assert loaded is not None
    assert_same(loaded, old)
    newer = make_table(count=20, seed=3)
    save_embeddings(tmp_path, newer)  # the next save commits past the debris and clears it
    loaded = load_embeddings(tmp_path)
    assert loaded is not None
    assert_same(loaded, newer)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".2." in p.name]


def test_damaged_manifest_or_files_are_not_ready(tmp_path: Path) -> None:
    save_embeddings(tmp_path, make_table())
    manifest_path = tmp_path / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    (tmp_path / manifest["files"]["vectors.npy"]).unlink()
    with pytest.raises(NotReadyError, match="missing"):
        load_embeddings(tmp_path)
    manifest_path.write_text("{ not json")
    with pytest.raises(NotReadyError, match="unreadable"):
        load_embeddings(tmp_path)


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    save_embeddings(tmp_path, make_table())
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    np.save(tmp_path / manifest["files"]["track_ids.npy"], np.array([object()] * 50), allow_pickle=True)
    with pytest.raises(NotReadyError):
        load_embeddings(tmp_path)


def test_lookups_and_subset() -> None:
    table = make_table(count=10, first_id=100)
    assert len(table) == 10 and table.dim == 8
    assert table.row_of(104) == 4 and table.row_of(7) is None
    np.testing.assert_array_equal(table.rows_of([109, 5, 100]), [9, -1, 0])
    picked = table.subset(table.track_ids % 2 == 0)
    assert picked.track_ids.tolist() == [100, 102, 104, 106, 108]
    np.testing.assert_array_equal(picked.versions, table.versions[::2])


def test_merge_replaces_and_adds() -> None:
    table = make_table(count=10)
    update = make_table(count=4, first_id=8, seed=5)  # replaces 8, 9 and adds 10, 11
    merged = merge_tables([table, update])
    assert merged.track_ids.tolist() == list(range(12))
    np.testing.assert_array_equal(merged.vectors[:8], table.vectors[:8])
    np.testing.assert_array_equal(merged.vectors[8:], update.vectors)
    np.testing.assert_array_equal(merged.versions[8:], update.versions)
    with pytest.raises(MusimilarError, match="model-b"):
        merge_tables([table, make_table(fingerprint="model-b")])


def test_merged_shards_equal_the_whole() -> None:
    whole = make_table(count=100, seed=7)
    order = np.random.default_rng(0).permutation(100)
    shards = [whole.subset(order[start : start + 30]) for start in range(0, 100, 30)]
    assert_same(merge_tables(shards[::-1]), whole)


def test_merge_duplicates_last_wins() -> None:
    first = make_table(count=5, seed=1)
    second = make_table(count=5, seed=2)
    merged = merge_tables([first, second])
    assert len(merged) == 5
    np.testing.assert_array_equal(merged.vectors, second.vectors)


def test_merge_refuses_mixed_models_and_sizes() -> None:
    with pytest.raises(MusimilarError, match="shard 0 has model model-a, shard 1 has model model-b"):
        merge_tables([make_table(), make_table(fingerprint="model-b")])
    with pytest.raises(MusimilarError, match="16-d"):
        merge_tables([make_table(), make_table(dim=16)])
    with pytest.raises(MusimilarError):
        merge_tables([])


def test_mismatched_columns_are_rejected() -> None:
    with pytest.raises(ValueError):
        EmbeddingTable(np.arange(3), np.zeros((4, 2), np.float32), "m")

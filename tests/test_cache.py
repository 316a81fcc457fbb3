from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musimilar import cache
from musimilar.cache import CacheReader, ShardWriter, cache_size_bytes, shard_path

N_MELS = 16
ROW_BYTES = N_MELS * 2  # float16


def random_logmel(frames: int, seed: int) -> np.ndarray:
    """[n_mels, frames] in the range of real log-mels (dB)."""
    return np.random.default_rng(seed).uniform(-100.0, 40.0, size=(N_MELS, frames)).astype(np.float32)


def assert_float16_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=2**-10, atol=1e-3)  # float16 keeps 11 significant bits


def test_round_trip(tmp_path: Path) -> None:
    logmels = {track_id: random_logmel(frames, track_id) for track_id, frames in [(1, 40), (2, 1), (3, 75)]}
    writer = ShardWriter(tmp_path, N_MELS, {})
    placements = {track_id: writer.append(track_id, logmel) for track_id, logmel in logmels.items()}
    writer.close()

    assert [(p.shard, p.offset, p.frames) for p in placements.values()] == [(0, 0, 40), (0, 40, 1), (0, 41, 75)]
    assert cache_size_bytes(tmp_path) == 116 * ROW_BYTES
    reader = CacheReader(tmp_path, N_MELS)
    for track_id, logmel in logmels.items():
        assert_float16_equal(reader.read(placements[track_id]), logmel)
    assert_float16_equal(reader.read(placements[3], start=10, frames=20), logmels[3][:, 10:30])
    assert_float16_equal(reader.read(placements[3], start=70), logmels[3][:, 70:])


def test_writer_continues_after_committed_data(tmp_path: Path) -> None:
    first = ShardWriter(tmp_path, N_MELS, {})
    a = first.append(1, random_logmel(30, 1))
    first.close()

    second = ShardWriter(tmp_path, N_MELS, {0: a.offset + a.frames})
    b = second.append(2, random_logmel(20, 2))
    second.close()

    assert (b.shard, b.offset) == (0, 30)
    reader = CacheReader(tmp_path, N_MELS)
    assert_float16_equal(reader.read(a), random_logmel(30, 1))
    assert_float16_equal(reader.read(b), random_logmel(20, 2))


def test_shards_roll_over_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "SHARD_LIMIT_BYTES", 150 * ROW_BYTES)
    writer = ShardWriter(tmp_path, N_MELS, {})
    sizes = [100, 40, 100, 300, 10]
    placements = [writer.append(track_id, random_logmel(frames, track_id)) for track_id, frames in enumerate(sizes)]
    writer.close()

    # 100 + 40 fit in one shard; 100 more would not; 300 alone is over the limit but a shard holds at least one
    assert [(p.shard, p.offset) for p in placements] == [(0, 0), (0, 100), (1, 0), (2, 0), (3, 0)]
    assert [shard_path(tmp_path, shard).stat().st_size // ROW_BYTES for shard in range(4)] == [140, 100, 300, 10]
    reader = CacheReader(tmp_path, N_MELS)
    for track_id, placement in enumerate(placements):
        assert_float16_equal(reader.read(placement), random_logmel(sizes[track_id], track_id))


def test_uncommitted_bytes_of_a_crashed_run_are_truncated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "SHARD_LIMIT_BYTES", 100 * ROW_BYTES)
    crashed = ShardWriter(tmp_path, N_MELS, {})
    committed = crashed.append(1, random_logmel(60, 1))  # the catalog recorded this one
    crashed.append(2, random_logmel(30, 2))  # these were on disk but never recorded
    crashed.append(3, random_logmel(50, 3))  # (in a new shard)
    crashed.append(4, random_logmel(5, 4))
    crashed.sync()
    crashed.stream.close()  # killed: no commit
    assert shard_path(tmp_path, 1).stat().st_size == 55 * ROW_BYTES

    writer = ShardWriter(tmp_path, N_MELS, {0: committed.offset + committed.frames})
    assert shard_path(tmp_path, 0).stat().st_size == 60 * ROW_BYTES
    assert shard_path(tmp_path, 1).stat().st_size == 0
    after = writer.append(5, random_logmel(20, 5))
    writer.close()

    assert (after.shard, after.offset) == (0, 60)
    reader = CacheReader(tmp_path, N_MELS)
    assert_float16_equal(reader.read(committed), random_logmel(60, 1))
    assert_float16_equal(reader.read(after), random_logmel(20, 5))


def test_read_crop_of_a_long_track(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, N_MELS, {})
    placement = writer.append(1, random_logmel(50, 1))
    writer.close()
    reader = CacheReader(tmp_path, N_MELS)
    assert_float16_equal(reader.read_crop(placement, 10, 30), random_logmel(50, 1)[:, 10:40])


def test_read_crop_of_a_track_shorter_than_the_crop_repeats_it(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, N_MELS, {})
    writer.append(1, random_logmel(7, 1))
    short = writer.append(2, random_logmel(10, 2))
    writer.close()
    reader = CacheReader(tmp_path, N_MELS)

    crop = reader.read_crop(short, 0, 25)  # [n_mels, 25]

    whole = random_logmel(10, 2)
    assert_float16_equal(crop, np.concatenate([whole, whole, whole[:, :5]], axis=1))


def test_cache_size_of_a_missing_directory(tmp_path: Path) -> None:
    assert cache_size_bytes(tmp_path / "absent") == 0

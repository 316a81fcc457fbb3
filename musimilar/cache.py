"""The spectrogram cache: log-mels as float16, time-major, appended to memory-mappable shard files.

A track's log-mel is `frames` rows of `n_mels` float16 values starting at row `offset` of shard `shard`; the catalog
holds these placements. Shards are only appended to, and a placement is committed to the catalog after its bytes
are on disk, so a run killed at any moment leaves at worst unreferenced bytes at a shard's end, which the next
writer truncates away. Nothing half-written is ever read as valid.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TypeVar

import numpy as np

from musimilar.catalog import Placement
from musimilar.home import Home
from musimilar.settings import AudioSettings, MelSettings

DTYPE = np.float16
SHARD_LIMIT_BYTES = 1 << 30  # a new shard starts past 1 GiB
ArrayLike = TypeVar("ArrayLike")  # a numpy array or a torch tensor
CACHE_KEY = "cache_key"  # catalog meta key: the preprocessing fingerprint of the cache the placements point into


def cache_directory(home: Home, audio: AudioSettings, mel: MelSettings) -> Path:
    """The cache of log-mels made with these settings (one folder per preprocessing fingerprint)."""
    from musimilar.mel import preprocessing_fingerprint

    return home.cache_dir / preprocessing_fingerprint(audio, mel)


def fit_frames(logmel: ArrayLike, length: int) -> ArrayLike:
    """A `[n_mels, T]` log-mel (numpy or torch) trimmed or repeated end to end to exactly `length` frames."""
    frames = logmel.shape[1]
    if frames >= length:
        return logmel[:, :length]
    return logmel[:, np.arange(length) % frames]


def bytes_per_second(audio: AudioSettings, mel: MelSettings) -> float:
    """Cache bytes one second of audio takes: n_mels float16 values per frame."""
    return mel.n_mels * np.dtype(DTYPE).itemsize * audio.sample_rate / mel.hop_length


def shard_path(directory: Path, shard: int) -> Path:
    return directory / f"shard-{shard:05d}.f16"


def cache_size_bytes(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(entry.stat().st_size for entry in directory.glob("shard-*.f16"))


def remove_cache(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class ShardWriter:
    """Appends log-mels to the newest shard; call `sync()` before committing the placements it returned."""

    def __init__(self, directory: Path, n_mels: int, committed_ends: dict[int, int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.row_bytes = n_mels * np.dtype(DTYPE).itemsize
        self.n_mels = n_mels
        self.shard = max(committed_ends, default=0)
        self._truncate_uncommitted(committed_ends)
        self.stream = open(shard_path(directory, self.shard), "ab")
        self.rows = self.stream.tell() // self.row_bytes

    def _truncate_uncommitted(self, committed_ends: dict[int, int]) -> None:
        """Drop bytes past the last committed log-mel of every shard (left by a killed run)."""
        for path in self.directory.glob("shard-*.f16"):
            shard = int(path.stem.split("-")[1])
            end = committed_ends.get(shard, 0) * self.row_bytes
            if path.stat().st_size > end:
                with open(path, "r+b") as stream:
                    stream.truncate(end)

    def append(self, track_id: int, logmel: np.ndarray) -> Placement:
        """Append a `[n_mels, frames]` log-mel; returns where it went."""
        assert logmel.shape[0] == self.n_mels, logmel.shape
        rows = np.ascontiguousarray(logmel.T, dtype=DTYPE)  # [frames, n_mels]
        if self.rows and (self.rows + rows.shape[0]) * self.row_bytes > SHARD_LIMIT_BYTES:
            self._next_shard()
        self.stream.write(rows.tobytes())
        placement = Placement(track_id, self.shard, self.rows, rows.shape[0])
        self.rows += rows.shape[0]
        return placement

    def _next_shard(self) -> None:
        self.sync()
        self.stream.close()
        self.shard += 1
        self.stream = open(shard_path(self.directory, self.shard), "ab")
        self.rows = self.stream.tell() // self.row_bytes

    def sync(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def close(self) -> None:
        self.sync()
        self.stream.close()


class CacheReader:
    """Random access to cached log-mels through read-only memory maps."""

    def __init__(self, directory: Path, n_mels: int) -> None:
        self.directory = directory
        self.n_mels = n_mels
        self._maps: dict[int, np.memmap] = {}

    def _shard(self, shard: int) -> np.memmap:
        if shard not in self._maps:
            path = shard_path(self.directory, shard)
            rows = path.stat().st_size // (self.n_mels * np.dtype(DTYPE).itemsize)
            self._maps[shard] = np.memmap(path, dtype=DTYPE, mode="r", shape=(rows, self.n_mels))
        return self._maps[shard]

    def read(self, placement: Placement, start: int = 0, frames: int | None = None) -> np.ndarray:
        """Frames [start, start + frames) of a track's log-mel as float32 `[n_mels, frames]`."""
        frames = placement.frames - start if frames is None else frames
        assert 0 <= start and start + frames <= placement.frames, (start, frames, placement)
        rows = self._shard(placement.shard)[placement.offset + start : placement.offset + start + frames]
        return np.asarray(rows, dtype=np.float32).T

    def read_crop(self, placement: Placement, start: int, frames: int) -> np.ndarray:
        """A crop of `frames` frames from `start`; a track shorter than the crop is repeated to fill it."""
        if placement.frames >= frames:
            return self.read(placement, start, frames)
        return fit_frames(self.read(placement), frames)

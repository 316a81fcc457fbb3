"""Training batches: pairs of crops from different positions of the same track, read from the cache.

An epoch's plan (which tracks form each batch, where each crop starts) is drawn up front from one seeded
generator, so it is the same whatever the number of loader threads, and a resumed run can replay it and skip the
steps already done. Background threads read the planned crops from the memory-mapped cache ahead of the trainer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from musimilar.cache import CacheReader
from musimilar.catalog import Placement

PREFETCH_BATCHES = 4


@dataclass
class PlannedBatch:
    rows: np.ndarray  # [B] indices into the track list
    starts: np.ndarray  # [B, V] first frame of each view's crop (V = train.views_per_track, 2 by default)


@dataclass
class Batch:
    views: tuple[torch.Tensor, ...]  # V x [B, n_mels, crop_frames] log-mel dB
    rows: torch.Tensor  # [B] indices into the track list (labels for supervised contrastive)


def plan_epoch(
    frames: np.ndarray, crop_frames: int, batch_size: int, rounds: int, generator: torch.Generator, views: int = 2
) -> list[PlannedBatch]:
    """`rounds` passes over the tracks, each a permutation cut into batches in which every track appears once,
    so a batch never holds two pairs of one track (they would be false negatives); `views` crops per track."""
    count = len(frames)
    batches: list[PlannedBatch] = []
    for _ in range(rounds):
        order = torch.randperm(count, generator=generator).numpy()
        pieces = max(1, -(-count // batch_size))
        for rows in np.array_split(order, pieces):
            starts = _crop_starts(frames[rows], crop_frames, generator, views)
            batches.append(PlannedBatch(rows=rows, starts=starts))
    return batches


def _crop_starts(frames: np.ndarray, crop_frames: int, generator: torch.Generator, views: int = 2) -> np.ndarray:
    """`views` crop starts per track, uniform over the positions that fit (0 for tracks shorter than a crop)."""
    room = np.maximum(frames - crop_frames, 0).astype(np.float64) + 1  # [B] number of valid starts
    uniform = torch.rand((len(frames), views), generator=generator, dtype=torch.float64).numpy()
    return np.minimum((uniform * room[:, None]).astype(np.int64), room[:, None].astype(np.int64) - 1)


def read_batch(reader: CacheReader, placements: list[Placement], planned: PlannedBatch, crop_frames: int) -> Batch:
    views = []
    for view in range(planned.starts.shape[1]):
        crops = [
            reader.read_crop(placements[row], int(start), crop_frames)
            for row, start in zip(planned.rows, planned.starts[:, view])
        ]
        views.append(torch.from_numpy(np.stack(crops)))  # [B, n_mels, crop_frames]
    return Batch(views=tuple(views), rows=torch.from_numpy(planned.rows))


def load_in_background(
    reader: CacheReader,
    placements: list[Placement],
    plan: list[PlannedBatch],
    crop_frames: int,
    threads: int,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Yield the planned batches in order, read by `threads` background threads (0: read inline)."""
    if threads <= 0:
        for planned in plan:
            yield read_batch(reader, placements, planned, crop_frames)
        return
    results: list[queue.Queue[Batch | BaseException]] = [queue.Queue(maxsize=1) for _ in plan]
    window = PREFETCH_BATCHES + threads  # batches read ahead of the one the trainer takes next
    consumed = [0]
    moved = threading.Condition()
    stop = threading.Event()

    def work(first: int) -> None:
        for index in range(first, len(plan), threads):
            with moved:
                moved.wait_for(lambda: index < consumed[0] + window or stop.is_set())
            if stop.is_set():
                return
            try:
                batch = read_batch(reader, placements, plan[index], crop_frames)
                if pin_memory:
                    batch = Batch(views=tuple(view.pin_memory() for view in batch.views), rows=batch.rows)
                results[index].put(batch)
            except BaseException as error:  # handed to the consumer, which re-raises it
                results[index].put(error)
                return

    workers = [threading.Thread(target=work, args=(first,), daemon=True) for first in range(threads)]
    for worker in workers:
        worker.start()
    try:
        for slot in results:
            item = slot.get()
            with moved:
                consumed[0] += 1
                moved.notify_all()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with moved:
            moved.notify_all()

"""The held-out check users watch: segment retrieval on tracks the model never trained on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from musimilar.cache import CacheReader
from musimilar.catalog import Placement
from musimilar.encoder import ContrastiveModel
from musimilar.losses import contrastive_loss

PAIRS_PER_TRACK = 4  # crop pairs per held-out track: more queries, a steadier score
MIN_TRACKS_FOR_VALIDATION = 10
MIN_VALIDATION_TRACKS = 8  # fewer make the retrieval score too coarse to watch (1/6 steps)
DISTRACTOR_TRACKS = 256  # training tracks whose crops are searched beside the held-out ones


def split_tracks(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): a seeded share of the tracks held out; none when the library is tiny."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    if count < MIN_TRACKS_FOR_VALIDATION or fraction <= 0:
        return np.sort(order), order[:0]
    held = max(round(count * fraction), min(MIN_VALIDATION_TRACKS, count // 4))
    return np.sort(order[held:]), np.sort(order[:held])


@dataclass
class ValidationSet:
    first: torch.Tensor  # [n * PAIRS_PER_TRACK, n_mels, crop_frames]
    second: torch.Tensor  # same shape: a crop of the same track, half a track after each first crop
    owners: torch.Tensor  # [n * PAIRS_PER_TRACK] which track each pair belongs to
    distractors: torch.Tensor  # [m, n_mels, crop_frames] crops of training tracks, searched beside `second`


def validation_set(
    reader: CacheReader, placements: list[Placement], crop_frames: int, distractors: list[Placement] = ()
) -> ValidationSet:
    """Fixed crop pairs of each held-out track, the two crops of a pair half a track apart (neighbouring crops
    sound alike in any model; distant ones only in a model that knows the track), and one middle crop of each
    distractor track: a handful of held-out tracks alone would be told apart by any features at all."""
    first, second, owners = [], [], []
    for owner, placement in enumerate(placements):
        room = max(placement.frames - crop_frames, 0)
        for pair in range(PAIRS_PER_TRACK):
            a = room * pair // (2 * PAIRS_PER_TRACK)
            b = a + room // 2
            first.append(reader.read_crop(placement, a, crop_frames))
            second.append(reader.read_crop(placement, b, crop_frames))
            owners.append(owner)
    others = [reader.read_crop(p, max(p.frames - crop_frames, 0) // 2, crop_frames) for p in distractors]
    others_tensor = torch.from_numpy(np.stack(others)) if others else torch.zeros((0, *first[0].shape))
    return ValidationSet(
        torch.from_numpy(np.stack(first)), torch.from_numpy(np.stack(second)), torch.tensor(owners), others_tensor
    )


def segment_top1(first: torch.Tensor, second: torch.Tensor, owners: torch.Tensor, others: torch.Tensor) -> float:
    """Share of first crops whose nearest crop (cosine) among all second crops and the distractors' crops comes
    from the same track."""
    gallery = torch.nn.functional.normalize(torch.cat([second, others]), dim=1)
    gallery_owners = torch.cat([owners, torch.full((len(others),), -1, dtype=owners.dtype)])
    similarity = torch.nn.functional.normalize(first, dim=1) @ gallery.T
    return float((gallery_owners[similarity.argmax(dim=1)] == owners).float().mean())


@torch.no_grad()
def validate(
    model: ContrastiveModel,
    data: ValidationSet,
    device: torch.device,
    loss: str,
    temperature: float,
    batch_size: int = 64,
) -> tuple[float, float]:
    """(validation loss, segment retrieval top-1) with the model in eval mode."""
    was_training = model.training
    model.eval()
    z1, z2, z3 = [], [], []
    for views, zs in ((data.first, z1), (data.second, z2), (data.distractors, z3)):
        for start in range(0, len(views), batch_size):
            zs.append(model(views[start : start + batch_size].to(device))[1].float().cpu())
    model.train(was_training)
    others = torch.cat(z3) if z3 else torch.zeros((0, z1[0].shape[1]))
    owners = data.owners
    name = "ntxent" if loss == "supcon" else loss  # no labels here: the self-supervised loss of the pairs
    value = contrastive_loss(name, torch.cat(z1), torch.cat(z2), temperature) if len(owners) > 1 else float("nan")
    return float(value), segment_top1(torch.cat(z1), torch.cat(z2), owners, others)  # on the vectors it ships

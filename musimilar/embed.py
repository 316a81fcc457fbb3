"""Track embeddings: several crops spread over a track, encoded in batches, averaged and L2-normalised."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musimilar.cache import CACHE_KEY, CacheReader, cache_directory, fit_frames
from musimilar.catalog import Catalog, Placement, Track
from musimilar.checkpoint import LoadedModel, load_model
from musimilar.devices import autocast, pick_device
from musimilar.embeddings import (
    EmbeddingTable,
    fit_post,
    load_embeddings,
    merge_tables,
    normalise_rows,
    save_embeddings,
)
from musimilar.errors import DecodeError, NotReadyError
from musimilar.frames import crop_frames
from musimilar.home import Home
from musimilar.mel import LogMel, preprocessing_fingerprint
from musimilar.query_crops import CropGroup, crop_starts, decode_query_crops
from musimilar.settings import RetrievalSettings, Settings
from musimilar.shards import in_shard, shard_directory

Progress = Callable[[int, int], None]


@dataclass
class EmbedReport:
    model_fingerprint: str
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0
    seconds: float = 0.0
    directory: str = ""
    shard: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `musimilar embed --format json`."""
        return {**asdict(self), "failed": [{"path": p, "error": e} for p, e in self.failed]}


def embedding_crop_frames(model: LoadedModel) -> int:
    return crop_frames(model.embed.crop_seconds, model.audio, model.mel)


def track_crops(logmel: np.ndarray, crops: int, length: int) -> np.ndarray:
    """[n_mels, T] -> [crops', n_mels, length]; a track shorter than a crop is repeated to fill it."""
    if logmel.shape[1] < length:
        return fit_frames(logmel, length)[None]
    return np.stack([logmel[:, s : s + length] for s in crop_starts(logmel.shape[1], crops, length)])


@torch.no_grad()
def encode_crops(model: LoadedModel, crops: torch.Tensor, device: torch.device) -> np.ndarray:
    """[C, n_mels, F] -> the L2-normalised mean of the crops' normalised embeddings, [D]."""
    with autocast(device):
        vectors = model.network.embed(crops.to(device))
    return normalise_rows(vectors.float().mean(dim=0, keepdim=True).cpu().numpy())[0]


def embed_file(model: LoadedModel, path: Path, device: torch.device | None = None) -> np.ndarray:
    """The embedding of any audio file, decoding only the crops it needs (see query_crops)."""
    return embed_decoded(model, decode_query_crops(path, model.audio, model.mel, model.embed), device)


def embed_decoded(model: LoadedModel, groups: list[CropGroup], device: torch.device | None = None) -> np.ndarray:
    """The embedding of a file from the decoded audio of its crops (query_crops.decode_query_crops)."""
    logmel = _logmel_module(model)
    length = embedding_crop_frames(model)
    crops = []
    for group in groups:
        with torch.inference_mode():  # one batched log-mel per group: a cold process pays each torch call dearly
            logmels = logmel(torch.from_numpy(group.segments))  # [G, n_mels, T]
        crops += [fit_frames(mel[:, lead:], length) for mel, lead in zip(logmels, group.leads)]
    return encode_crops(model, torch.stack(crops), device or torch.device("cpu"))


_logmel_cache: dict[str, LogMel] = {}


def _logmel_module(model: LoadedModel) -> LogMel:
    key = preprocessing_fingerprint(model.audio, model.mel)
    if key not in _logmel_cache:
        _logmel_cache[key] = LogMel(model.audio, model.mel)
    return _logmel_cache[key]


SAVE_EVERY_SECONDS = 60.0  # an interrupted embed keeps what it stored and continues from there


def embed_device(settings: Settings) -> str:
    """The device that embeds: the embed section's, or where it says auto, the one training uses."""
    return settings.embed.device if settings.embed.device != "auto" else settings.train.device


def open_model(home: Home, model_path: Path | None, device: torch.device) -> LoadedModel:
    path = model_path or home.current_model_path
    if model_path is None and not path.is_file():
        raise NotReadyError(f"{home.root}: no trained model yet (run `musimilar train DIR`)")
    return load_model(path, device)


def embed_library(
    home: Home,
    model_path: Path | None = None,
    shard: tuple[int, int] | None = None,
    device_name: str = "auto",
    progress: Progress | None = None,
    retrieval: RetrievalSettings | None = None,
) -> EmbedReport:
    """Embed every converted track (of one shard) that has no up-to-date embedding for the model; then fit the
    retrieval post-processing of `retrieval` to the whole table (not to a shard: `merge_shards` fits it)."""
    started = time.perf_counter()
    device = pick_device(device_name)
    model = open_model(home, model_path, device)
    directory = shard_directory(home, shard) if shard else home.embeddings_dir
    with Catalog(home.catalog_path) as catalog:
        tracks = [t for t in catalog.tracks("ok") if in_shard(t.id, shard)]
        from_cache = catalog.get_meta(CACHE_KEY) == preprocessing_fingerprint(model.audio, model.mel)
        placements = catalog.placements() if from_cache else {}
    stored = load_embeddings(directory, mmap=False)
    table = _current_rows(stored, model, tracks)
    report = EmbedReport(
        model.fingerprint,
        directory=str(directory),
        total=len(tracks),
        reused=len(table),
        shard=f"{shard[0]}/{shard[1]}" if shard else None,
    )
    if stored is not None and stored.model_fingerprint == model.fingerprint:
        report.removed = len(stored) - len(table)
    done = set(table.track_ids.tolist())
    todo = [t for t in tracks if t.id not in done]
    reader = CacheReader(cache_directory(home, model.audio, model.mel), model.mel.n_mels)
    last_save = time.monotonic()
    batches: list[EmbeddingTable] = []  # merged into the table at each save, not per batch (that is quadratic)
    try:
        for batch_tracks, vectors in _embed_batches(model, todo, placements, reader, device, report):
            batches.append(
                EmbeddingTable(
                    np.array([t.id for t in batch_tracks], dtype=np.int64),
                    vectors,
                    model.fingerprint,
                    np.array([t.version for t in batch_tracks], np.int64),
                )
            )
            report.embedded += len(batch_tracks)
            if progress is not None:
                progress(report.embedded + len(report.failed), len(todo))
            if time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                table, batches = merge_tables([table, *batches]), []
                save_embeddings(directory, table)
                last_save = time.monotonic()
    finally:
        whole = merge_tables([table, *batches])
        save_embeddings(directory, fit_post(whole, None if shard else retrieval))
    report.seconds = time.perf_counter() - started
    return report


def _current_rows(stored: EmbeddingTable | None, model: LoadedModel, tracks: list[Track]) -> EmbeddingTable:
    """The stored rows still valid: same model, track still converted, same content version."""
    if stored is None or stored.model_fingerprint != model.fingerprint or stored.dim != model.dim:
        empty = np.zeros((0, model.dim), np.float32)
        return EmbeddingTable(np.zeros(0, np.int64), empty, model.fingerprint)
    return stored.live({t.id: t.version for t in tracks})


def _embed_batches(
    model: LoadedModel,
    tracks: list[Track],
    placements: dict[int, Placement],
    reader: CacheReader,
    device: torch.device,
    report: EmbedReport,
) -> Iterator[tuple[list[Track], np.ndarray]]:
    """Yield (tracks, [n, D] vectors), about `embed.batch_size` crops per forward pass."""
    length = embedding_crop_frames(model)
    pending: list[tuple[Track, np.ndarray]] = []
    crops_pending = 0
    for track in tracks:
        try:
            crops = _crops_of(model, track, placements.get(track.id), reader, length)
        except DecodeError as error:
            report.failed.append((track.path, f"{error.kind}: {error.cause}"))
            continue
        pending.append((track, crops))
        crops_pending += len(crops)
        if crops_pending >= model.embed.batch_size:
            yield _encode_pending(model, pending, device)
            pending, crops_pending = [], 0
    if pending:
        yield _encode_pending(model, pending, device)


def _crops_of(
    model: LoadedModel, track: Track, placement: Placement | None, reader: CacheReader, length: int
) -> np.ndarray:
    if placement is not None:
        return track_crops(reader.read(placement), model.embed.crops, length)
    from musimilar.audio import decode

    samples, _ = decode(track.audio_path, model.audio, span=track.span)
    with torch.inference_mode():
        logmel = _logmel_module(model)(torch.from_numpy(samples)).numpy()
    return track_crops(logmel, model.embed.crops, length)


@torch.no_grad()
def _encode_pending(
    model: LoadedModel, pending: list[tuple[Track, np.ndarray]], device: torch.device
) -> tuple[list[Track], np.ndarray]:
    crops = torch.from_numpy(np.concatenate([c for _, c in pending])).to(device)  # [sum C, n_mels, F]
    with autocast(device):
        vectors = model.network.embed(crops).float()  # [sum C, D]
    owners = torch.repeat_interleave(torch.arange(len(pending)), torch.tensor([len(c) for _, c in pending]))
    sums = torch.zeros(len(pending), vectors.shape[1]).index_add_(0, owners, vectors.cpu())
    return [t for t, _ in pending], normalise_rows(sums.numpy())

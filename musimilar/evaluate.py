"""`evaluate`: do a track's nearest neighbours share its label? For the home's model and a no-training baseline.

The label figures come from `metrics.summarise` on the stored embeddings and on the baseline's vectors (per-band
mean and spread of each track's cached log-mel, z-scored). Segment retrieval needs no labels: two non-overlapping
crops of each track, read from the cache, are embedded on the spot. docs/evaluation.md explains every figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musimilar import metrics
from musimilar.cache import CACHE_KEY, CacheReader, cache_directory
from musimilar.catalog import Placement, Track
from musimilar.checkpoint import LoadedModel
from musimilar.devices import autocast
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.labels import default_by, known_keys, label_of, read_label_csv, with_labels
from musimilar.mel import preprocessing_fingerprint
from musimilar.postprocess import PostProcess, csls_neighbours, hubness
from musimilar.ready import ReadyHome

LABEL_FIGURES = ("precision_at_k", "map", "knn_accuracy", "linear_probe_accuracy")
SEGMENT_FIGURES = ("top1", "top10")
FIGURES = LABEL_FIGURES + SEGMENT_FIGURES
EXCLUDE_KEYS = ("album", "artist")
FEW_TRACKS = 5  # labels with fewer tracks are named in a warning
SEGMENT_SAMPLE = 500  # tracks in segment retrieval unless told otherwise: embedding their crops is the costly part
# The baseline's statistics of a track longer than 16 x 32 frames (12 s at 22050 Hz / 512 hop) come from 16
# evenly spaced blocks of 32 frames: a sample of its frames from start to end. Reading whole tracks would make the
# baseline the slowest part of evaluating a large library (10,000 tracks of 4 min are 25 GB of cache).
BASELINE_BLOCKS = 16
BASELINE_BLOCK_FRAMES = 32
NAMES_SHOWN = 10  # labels named in a warning before "..."

Progress = Callable[[int, int], None]


@dataclass
class EvaluationReport:
    """The figures of docs/evaluation.md; a figure that could not be computed is None."""

    by: str
    k: int
    exclude_same: str | None
    tracks: int = 0  # labelled tracks in the label figures
    labels: dict[str, int] = field(default_factory=dict)  # tracks per label, most common first
    model: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FIGURES))
    baseline: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FIGURES))
    chance: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FIGURES))
    control: dict[str, dict[str, float | None]] | None = None  # {"model": ..., "baseline": ...}, label figures
    # The model's label figures without the retrieval post-processing (None when the embeddings carry none).
    raw: dict[str, float | None] | None = None
    # Hubness of the top-k lists: {"model": ..., "raw": ...} of postprocess.hubness figures.
    hubness: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_tracks: int = 0  # tracks in segment retrieval
    warnings: list[str] = field(default_factory=list)
    model_fingerprint: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: a figure that is not a number (nan) becomes None."""
        return _json_safe(asdict(self))


@dataclass
class _Library:
    """The tracks that take part: converted, embedded by the current model, with a cached log-mel."""

    model: LoadedModel
    device: torch.device
    tracks: list[Track]
    vectors: np.ndarray  # [N, D] their embeddings as searched (post-processed when the embeddings carry it)
    raw_vectors: np.ndarray  # [N, D'] their stored embeddings before post-processing
    post: PostProcess | None
    radius: np.ndarray | None  # [N] CSLS radius of each track (from the whole library), None without CSLS
    placements: list[Placement]
    reader: CacheReader
    warnings: list[str]


def evaluate(
    ready: ReadyHome,
    by: str | None = None,
    k: int = 10,
    exclude_same: str | None = None,
    labels_csv: Path | None = None,
    seed: int = 0,
    control: bool = False,
    sample: int | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Evaluate the ready home's model and its stored embeddings against the tracks' labels.

    `by` defaults to "label", else "genre", else "folder" (see labels.default_by). `labels_csv` lays a label
    file over the stored labels for this evaluation only. `sample` caps the tracks of segment retrieval (None:
    SEGMENT_SAMPLE, 0: all). `control` adds the shuffled-label control. `progress(done, total)` follows the
    crops embedded.
    """
    started = time.perf_counter()
    if exclude_same not in (None, *EXCLUDE_KEYS):
        raise MusimilarError(f"--exclude-same {exclude_same}: choose {' or '.join(EXCLUDE_KEYS)}")
    if k < 1:
        raise MusimilarError(f"--k {k}: must be at least 1")
    library = _open_library(ready, labels_csv)
    report = EvaluationReport(
        by or default_by(library.tracks),
        k,
        exclude_same,
        warnings=library.warnings,
        model_fingerprint=library.model.fingerprint,
    )
    _label_figures(report, library, seed, control)
    _segment_figures(report, library, sample, seed, progress)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _open_library(ready: ReadyHome, labels_csv: Path | None) -> _Library:
    model, table, catalog = ready.model, ready.table, ready.catalog
    if catalog.get_meta(CACHE_KEY) != preprocessing_fingerprint(model.audio, model.mel):
        raise NotReadyError(
            f"{ready.home.root}: the spectrogram cache was made with other audio or mel settings than "
            "the current model (train a model on it with `musimilar train`)"
        )
    converted, placements = catalog.tracks("ok"), catalog.placements()
    warnings = []
    if labels_csv is not None:
        converted, unmatched = with_labels(converted, read_label_csv(labels_csv))
        if unmatched:
            warnings.append(f"{labels_csv}: {len(unmatched)} paths name no converted track, e.g. {unmatched[0]}")
    tracks = [t for t in converted if table.row_of(t.id) is not None and t.id in placements]
    if len(tracks) < len(converted):
        warnings.append(
            f"{len(converted) - len(tracks)} converted tracks have no up-to-date embedding and are left "
            "out (run `musimilar embed`)"
        )
    rows = table.rows_of([t.id for t in tracks])
    vectors = np.asarray(table.vectors[rows], dtype=np.float32)
    raw = np.asarray(ready.raw_table.vectors[rows], dtype=np.float32)
    post = table.post
    radius = post.radius[rows] if post is not None and post.radius is not None else None
    reader = CacheReader(cache_directory(ready.home, model.audio, model.mel), model.mel.n_mels)
    return _Library(
        model, ready.device, tracks, vectors, raw, post, radius, [placements[t.id] for t in tracks], reader, warnings
    )


def _label_figures(report: EvaluationReport, library: _Library, seed: int, control: bool) -> None:
    """Fill the label figures of the model, the baseline, chance and (when asked) the control."""
    names = [label_of(track, report.by) for track in library.tracks]
    rows = np.array([row for row, name in enumerate(names) if name], dtype=np.int64)
    labels = np.array([names[row] for row in rows], dtype=str)
    _warn_about_labels(report, library, labels)
    if len(np.unique(labels)) < 2:
        return
    groups = _groups([library.tracks[row] for row in rows], report.exclude_same, report.warnings)
    spaces = {"model": library.vectors[rows], "baseline": _baseline_vectors(library, rows)}
    for name, vectors in spaces.items():
        summary = metrics.summarise(vectors, labels, report.k, groups, seed)
        getattr(report, name).update({figure: summary[figure] for figure in LABEL_FIGURES})
    _post_processing_figures(report, library, rows, labels, groups, seed)
    report.k, report.tracks, report.labels = summary["k"], len(labels), metrics.label_counts(labels)
    most_common = max(report.labels.values()) / len(labels)
    report.chance.update(
        precision_at_k=summary["chance_precision"],
        map=metrics.chance_average_precision(labels, groups),
        knn_accuracy=most_common,
        linear_probe_accuracy=most_common,
    )
    if control:
        shuffled = metrics.shuffled_labels(labels, seed)
        report.control = {}
        for name, vectors in spaces.items():
            summary = metrics.summarise(vectors, shuffled, report.k, groups, seed)
            report.control[name] = {figure: summary[figure] for figure in LABEL_FIGURES}


def _post_processing_figures(
    report: EvaluationReport,
    library: _Library,
    rows: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    seed: int,
) -> None:
    """The model's figures as searched (CSLS ranking when the embeddings carry it), without post-processing
    beside them, and the hubness of both rankings."""
    codes, _ = metrics.encode_labels(labels)
    k = min(report.k, len(codes) - 1)
    post = library.post
    if post is not None:
        summary = metrics.summarise(library.raw_vectors[rows], labels, report.k, groups, seed)
        report.raw = {figure: summary[figure] for figure in LABEL_FIGURES}
        indices, _ = metrics.cosine_neighbours(library.raw_vectors[rows], k, groups)
        report.hubness["raw"] = hubness(indices, len(rows))
    if library.radius is not None:
        indices, sims = csls_neighbours(library.vectors[rows], library.radius[rows], k, groups)
        report.model.update(
            precision_at_k=metrics.precision_at_k(codes, indices),
            knn_accuracy=metrics.knn_accuracy(codes, indices, sims),
        )
    else:
        indices, _ = metrics.cosine_neighbours(library.vectors[rows], k, groups)
    report.hubness["model"] = hubness(indices, len(rows))


def _warn_about_labels(report: EvaluationReport, library: _Library, labels: np.ndarray) -> None:
    by, warnings = report.by, report.warnings
    if len(np.unique(labels)) < 2:
        found = "no track has a" if len(labels) == 0 else f"all {len(labels)} labelled tracks share one"
        warnings.append(
            f"{found} '{by}' label: the label figures need two labels or more "
            f"(labels known: {', '.join(known_keys(library.tracks))}; import more with "
            "`musimilar labels import FILE`)"
        )
        return
    if len(labels) < len(library.tracks):
        warnings.append(
            f"{len(library.tracks) - len(labels)} of {len(library.tracks)} tracks have no '{by}' label "
            "and are left out of the label figures"
        )
    few = metrics.few_examples_labels(labels, FEW_TRACKS)
    if few:
        counts = metrics.label_counts(labels)
        named = ", ".join(f"{name} ({counts[name]})" for name in few[:NAMES_SHOWN])
        more = f" and {len(few) - NAMES_SHOWN} more" if len(few) > NAMES_SHOWN else ""
        warnings.append(
            f"{len(few)} labels have fewer than {FEW_TRACKS} tracks, so their figures rest on very "
            f"few examples: {named}{more}"
        )
    if report.exclude_same == by:
        warnings.append(f"--exclude-same {by} with --by {by} leaves no same-label candidate: expect zeros")


def _groups(tracks: list[Track], key: str | None, warnings: list[str]) -> np.ndarray | None:
    """Group id of each track for --exclude-same (UNKNOWN_GROUP where its album/artist is not known)."""
    if key is None:
        return None
    names = [label_of(track, key) for track in tracks]
    codes = {name: code for code, name in enumerate(sorted({name for name in names if name}))}
    if not codes:
        warnings.append(f"--exclude-same {key}: no track has an '{key}' label, so nothing is excluded")
    return np.array([codes[name] if name else metrics.UNKNOWN_GROUP for name in names], dtype=np.int64)


def _baseline_vectors(library: _Library, rows: np.ndarray) -> np.ndarray:
    """The baseline's unit vectors [len(rows), 2 * n_mels]: log-mel statistics of each track, z-scored."""
    statistics = [metrics.logmel_statistics(_spread_frames(library.reader, library.placements[row])) for row in rows]
    return metrics.standardise(np.stack(statistics))


def _spread_frames(reader: CacheReader, placement: Placement) -> np.ndarray:
    """A track's whole log-mel [n_mels, T], or for a long track BASELINE_BLOCKS evenly spaced blocks of it."""
    if placement.frames <= BASELINE_BLOCKS * BASELINE_BLOCK_FRAMES:
        return reader.read(placement)
    starts = np.linspace(0, placement.frames - BASELINE_BLOCK_FRAMES, BASELINE_BLOCKS).astype(np.int64)
    return np.concatenate([reader.read(placement, int(start), BASELINE_BLOCK_FRAMES) for start in starts], axis=1)


def _segment_figures(
    report: EvaluationReport, library: _Library, sample: int | None, seed: int, progress: Progress | None
) -> None:
    """Segment retrieval of the model and the baseline on two non-overlapping crops per track."""
    from musimilar.embed import embedding_crop_frames

    length = embedding_crop_frames(library.model)
    eligible = np.flatnonzero([placement.frames >= 2 * length for placement in library.placements])
    seconds = library.model.embed.crop_seconds
    short = len(library.placements) - len(eligible)
    if short:
        report.warnings.append(
            f"{short} tracks are shorter than two {seconds:g} s crops and are left out of segment retrieval"
        )
    if len(eligible) < 2:
        report.warnings.append(f"segment retrieval needs two tracks of {2 * seconds:g} s or more")
        return
    sample = SEGMENT_SAMPLE if sample is None else sample
    if sample and len(eligible) > sample:
        eligible = np.sort(np.random.default_rng(seed).choice(eligible, sample, replace=False))
    crops = [
        (library.placements[row], start)
        for row in eligible
        for start in _pair_starts(library.placements[row].frames, length)
    ]  # first, second, first, ...
    vectors, statistics = _encode_crops(library, crops, length, progress)
    baseline = metrics.standardise(statistics)
    report.model.update(metrics.segment_retrieval(vectors[0::2], vectors[1::2]))
    report.baseline.update(metrics.segment_retrieval(baseline[0::2], baseline[1::2]))
    report.chance.update(top1=1 / len(eligible), top10=min(10, len(eligible)) / len(eligible))
    report.segment_tracks = len(eligible)


def _pair_starts(frames: int, length: int) -> tuple[int, int]:
    """Starts of two crops centred in the first and the second half of a track of at least 2 * length frames."""
    half = frames // 2
    return (half - length) // 2, half + (half - length) // 2


@torch.inference_mode()
def _encode_crops(
    library: _Library, crops: list[tuple[Placement, int]], length: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """(model embeddings [C, D], baseline statistics [C, 2 * n_mels]) of the crops, embedded in batches."""
    model, device = library.model, library.device
    vectors, statistics = [], []
    for start in range(0, len(crops), model.embed.batch_size):
        batch = np.stack(
            [
                library.reader.read(placement, first, length)
                for placement, first in crops[start : start + model.embed.batch_size]
            ]
        )  # [b, n_mels, F]
        statistics.extend(metrics.logmel_statistics(crop) for crop in batch)
        with autocast(device):
            vectors.append(model.network.embed(torch.from_numpy(batch).to(device)).float().cpu().numpy())
        if progress is not None:
            progress(start + len(batch), len(crops))
    return np.concatenate(vectors), np.stack(statistics)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

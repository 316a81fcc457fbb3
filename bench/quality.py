"""Recommendation quality on a real labelled library, beside hand-made baselines.

    python bench/quality.py [--devset DIR] [--minutes 30] [--set train.lr=0.002 ...] [--reuse-model]

The development set (../shared/devset/fetch.sh) is 128 game-soundtrack tracks in 12 labels (label = soundtrack).
The model trains on all tracks with no labels through `Library.train`, the path of
`musimilar train DEVSET/audio --minutes M`: the only settings given are `train.minutes` and any `--set`, printed
first (`--minutes 0` gives none: the run stops by itself, as `musimilar train DIR` alone does); labels are used
only to score.
Every third label (sorted) is held out from tuning: decide settings on the "tune" column, report "held-out" too.
Figures: label precision@10 and kNN@10 accuracy (cosine, query left out), and segment retrieval (two
non-overlapping 10 s segments from the middle of each track: does the first find the second, top-1).
Baselines: log-mel statistics (band mean and std over time) and MFCC statistics (20 MFCC + deltas, spectral
contrast/centroid/rolloff, chroma; mean and std over the middle 30 s; z-scored), the reference features.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from musimilar import metrics
from musimilar.cache import CacheReader, cache_directory
from musimilar.catalog import Catalog
from musimilar.embed import embedding_crop_frames, encode_crops, open_model, track_crops
from musimilar.embeddings import load_embeddings
from musimilar.home import Home
from musimilar.library import Library
from musimilar.frames import frames_per_second
from musimilar.settings import load_settings

SEGMENT_SECONDS = 10.0
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, default=Path.home() / ".cache" / "musimilar-devset")
    parser.add_argument("--home", type=Path, default=Path(".bench/quality-home"))
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="training budget (wall minutes); 0: none, the run stops by itself"
    )
    parser.add_argument("--set", action="append", default=[], help="a setting, e.g. train.lr=0.002")
    parser.add_argument("--reuse-model", action="store_true", help="score the home's current model, no training")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    paths, labels = read_manifest(args.devset)
    flags = {"train.minutes": args.minutes or None, **parse_sets(args.set)}
    print("settings (what `musimilar train DEVSET/audio` is given):", json.dumps(flags))
    library = Library.open(args.home.resolve(), flags=flags)
    if args.reuse_model:
        library.convert([args.devset / "audio"])
        library.embed()
    else:
        started = time.perf_counter()
        report = library.train([args.devset / "audio"], notify=print).train
        print(f"trained {report.epochs} epochs, {report.steps} steps in {time.perf_counter() - started:.0f} s")
    figures = score(library.home, paths, labels)
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps({"settings": flags, "figures": figures}, indent=2))


def parse_sets(items: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for item in items:
        key, value = item.split("=", 1)
        parsed[key] = json.loads(value) if value[:1] in "[{0123456789-tf" and value not in ("", "-") else value
    return parsed


def read_manifest(devset: Path) -> tuple[list[Path], np.ndarray]:
    with open(devset / "manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return [(devset / row["path"]).resolve() for row in rows], np.array([row["label"] for row in rows])


def score(home: Home, paths: list[Path], labels: np.ndarray) -> dict[str, dict[str, float]]:
    model = open_model(home, None, __import__("torch").device("cpu"))
    table = load_embeddings(home.embeddings_dir)
    searched = table.post_processed()  # as `recommend` searches them ([retrieval] settings; CSLS not counted)
    settings = load_settings()
    with Catalog(home.catalog_path) as catalog:
        ids = [catalog.track_by_path(p).id for p in paths]
        placements = catalog.placements()
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    logmels = [reader.read(placements[i]) for i in ids]
    names = sorted(set(labels))
    held_out = set(names[2::3])
    subsets = {
        "all": np.ones(len(labels), bool),
        "tune": ~np.isin(labels, list(held_out)),
        "held-out": np.isin(labels, list(held_out)),
    }
    features = {
        "model": np.asarray(searched.vectors[searched.rows_of(ids)]),
        "log-mel stats": metrics.standardise(np.stack([metrics.logmel_statistics(m) for m in logmels])),
        "MFCC stats": mfcc_statistics(paths, home.root / "mfcc.npy"),
    }
    segments = segment_features(model, logmels, frames_per_second(settings.audio, settings.mel))
    figures: dict[str, dict[str, float]] = {}
    for name, vectors in features.items():
        row: dict[str, float] = {}
        for subset, mask in subsets.items():
            summary = metrics.summarise(vectors[mask], labels[mask], k=K)
            row[f"p@10 {subset}"] = summary["precision_at_k"]
            row[f"kNN {subset}"] = summary["knn_accuracy"]
        if name in segments:
            first, second = segments[name]
            row["segment top-1"] = metrics.segment_retrieval(first, second)["top1"]
        figures[name] = row
    figures["chance"] = {f"p@10 {s}": metrics.chance_precision(labels[m], K) for s, m in subsets.items()}
    return figures


def segment_features(model, logmels: list[np.ndarray], fps: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two non-overlapping 10 s segments from the middle of each track, embedded by the model and the stats."""
    import torch

    size = int(SEGMENT_SECONDS * fps)
    length = embedding_crop_frames(model)
    firsts, seconds, stats_first, stats_second = [], [], [], []
    for logmel in logmels:
        middle = logmel.shape[1] // 2
        first = logmel[:, max(0, middle - size) : middle]
        second = logmel[:, middle : middle + size]
        for segment, out, stats in ((first, firsts, stats_first), (second, seconds, stats_second)):
            crops = track_crops(segment, max(1, segment.shape[1] // length), length)
            out.append(encode_crops(model, torch.from_numpy(crops), torch.device("cpu")))
            stats.append(metrics.logmel_statistics(segment))
    both = metrics.standardise(np.concatenate([np.stack(stats_first), np.stack(stats_second)]))
    return {
        "model": (np.stack(firsts), np.stack(seconds)),
        "log-mel stats": (both[: len(logmels)], both[len(logmels) :]),
    }


def mfcc_statistics(paths: list[Path], cache: Path) -> np.ndarray:
    """The reference hand-made features, on the middle 30 s of each track (cached: they never change)."""
    if cache.is_file():
        stored = np.load(cache)
        if len(stored) == len(paths):
            return metrics.standardise(stored)
    import librosa

    rows = []
    for path in paths:
        duration = librosa.get_duration(path=str(path))
        offset = max(0.0, duration / 2 - 15)
        y, sr = librosa.load(str(path), sr=22050, offset=offset, duration=30.0)
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        parts = [
            mfcc,
            librosa.feature.delta(mfcc),
            librosa.feature.spectral_contrast(y=y, sr=sr),
            librosa.feature.spectral_centroid(y=y, sr=sr),
            librosa.feature.spectral_rolloff(y=y, sr=sr),
            librosa.feature.chroma_stft(y=y, sr=sr),
        ]
        frames = np.concatenate(parts)
        rows.append(np.concatenate([frames.mean(axis=1), frames.std(axis=1)]))
    stored = np.stack(rows)
    np.save(cache, stored)
    return metrics.standardise(stored)


def print_table(figures: dict[str, dict[str, float]]) -> None:
    columns = sorted({c for row in figures.values() for c in row}, key=lambda c: (c.split()[0], c))
    print(f"{'':16}" + "".join(f"{c:>16}" for c in columns))
    for name, row in figures.items():
        print(f"{name:16}" + "".join(f"{row[c]:16.3f}" if c in row else f"{'':16}" for c in columns))


if __name__ == "__main__":
    main()

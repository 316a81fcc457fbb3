"""Recommendation quality on a real labelled library, beside hand-made baselines.

    python bench/quality.py [--devset DIR] [--minutes 30] [--set train.lr=0.002 ...] [--reuse-model]

The development set (../shared/devset/fetch.sh) is 303 game-soundtrack tracks in 26 labels (label = soundtrack).
The model trains on all tracks with no labels through `Library.train`, the path of
`musimilar train DEVSET/audio --minutes M`: the only settings given are `train.minutes` and any `--set`, printed
first (`--minutes 0` gives none: the run stops by itself, as `musimilar train DIR` alone does); labels are used
only to score.
Every third label (sorted) is held out from tuning: decide settings on the "tune" column, report "held-out" too.
Figures: label precision@10 and kNN@10 accuracy (query left out), and segment retrieval (two non-overlapping 10 s
segments from the middle of each track: does the first find the second, top-1). The "model" row scores what
`recommend` answers: the stored vectors after the retrieval post-processing, ranked by CSLS when the embeddings carry
it, and each 10 s segment embedded as `recommend FILE` embeds a 10 s file (`embed.crops` crops spread over it, then
the post-processing), the second segments ranked by CSLS over their own radii as a library's tracks are.
"model, earlier scoring" is the scoring of earlier tables: cosine ranking of the post-processed vectors, segments
as floor(10 / 3) raw crops ranked by cosine.
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
from musimilar.embeddings import EmbeddingTable, load_embeddings
from musimilar.frames import frames_per_second
from musimilar.home import Home
from musimilar.library import Library
from musimilar.postprocess import PostProcess, csls_neighbours, unit_rows
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
    settings = load_settings()
    with Catalog(home.catalog_path) as catalog:
        ids = [catalog.track_by_path(p).id for p in paths]
        placements = catalog.placements()
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    logmels = [reader.read(placements[i]) for i in ids]
    subsets = label_subsets(labels)
    vectors, radius = searched_rows(table, ids)
    features = {
        "model, earlier scoring": vectors,
        "log-mel stats": metrics.standardise(np.stack([metrics.logmel_statistics(m) for m in logmels])),
        "MFCC stats": mfcc_statistics(paths, home.root / "mfcc.npy"),
    }
    segments = segment_features(model, table.post, logmels, frames_per_second(settings.audio, settings.mel))
    searched_with_errors = searched_figures(vectors, radius, labels, subsets)
    figures: dict[str, dict[str, float]] = {"model": {name: value for name, (value, _) in searched_with_errors.items()}}
    figures["model ± standard error"] = {name: error for name, (_, error) in searched_with_errors.items()}
    for name, features_of in features.items():
        figures[name] = {}
        for subset, mask in subsets.items():
            summary = metrics.summarise(features_of[mask], labels[mask], k=K)
            figures[name][f"p@10 {subset}"] = summary["precision_at_k"]
            figures[name][f"kNN {subset}"] = summary["knn_accuracy"]
    csls_k = table.post.csls_k if table.post is not None and table.post.radius is not None else 0
    for name, (first, second) in segments.items():
        as_recommend_ranks = csls_k if name == "model" else 0
        figures[name]["segment top-1"] = metrics.segment_retrieval(first, second, csls_k=as_recommend_ranks)["top1"]
    figures["chance"] = {f"p@10 {s}": metrics.chance_precision(labels[m], K) for s, m in subsets.items()}
    return figures


def searched_rows(table: EmbeddingTable, ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The post-processed vectors `recommend` searches for `ids`, and their CSLS radii (None without CSLS)."""
    rows = table.rows_of(ids)
    vectors = np.asarray(table.post_processed().vectors[rows])
    radius = table.post.radius[rows] if table.post is not None and table.post.radius is not None else None
    return vectors, radius


def label_subsets(labels: np.ndarray) -> dict[str, np.ndarray]:
    """All tracks, the tune labels and the held-out labels (every third label, sorted)."""
    held_out = sorted(set(labels))[2::3]
    tune = ~np.isin(labels, held_out)
    return {"all": np.ones(len(labels), bool), "tune": tune, "held-out": ~tune}


def searched_figures(
    vectors: np.ndarray, radius: np.ndarray | None, labels: np.ndarray, subsets: dict[str, np.ndarray]
) -> dict[str, tuple[float, float]]:
    """{figure: (value, standard error)}: p@10 (error over tracks) and kNN@10 (binomial) of the ranking `recommend`
    gives, CSLS over the library's radii when there are any, on each subset of the tracks."""
    figures: dict[str, tuple[float, float]] = {}
    for subset, mask in subsets.items():
        precision, correct = per_track(vectors[mask], labels[mask], None if radius is None else radius[mask])
        figures[f"p@10 {subset}"] = (float(precision.mean()), float(precision.std(ddof=1) / np.sqrt(len(precision))))
        accuracy = float(correct.mean())
        figures[f"kNN {subset}"] = (accuracy, float(np.sqrt(accuracy * (1 - accuracy) / len(correct))))
    return figures


def per_track(vectors: np.ndarray, labels: np.ndarray, radius: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each track's precision@10 and whether its kNN@10 vote is right (cosine ranking, or CSLS with `radius`)."""
    codes, _ = metrics.encode_labels(labels)
    k = min(K, len(codes) - 1)
    if radius is None:
        indices, sims = metrics.cosine_neighbours(vectors, k)
    else:
        indices, sims = csls_neighbours(unit_rows(vectors), radius, k)
    precision = (codes[indices] == codes[:, None]).mean(axis=1)
    scores = metrics.weighted_vote(codes[indices], sims, int(codes.max()) + 1)
    correct = metrics.vote_winner(scores, codes[indices]) == codes
    return precision, correct


def segment_features(
    model, post: PostProcess | None, logmels: list[np.ndarray], fps: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two non-overlapping 10 s segments from the middle of each track, embedded by the model (as a 10 s query file
    is, and as earlier tables did) and summarised by the log-mel statistics."""
    import torch

    size = int(SEGMENT_SECONDS * fps)
    length = embedding_crop_frames(model)
    pairs: dict[str, tuple[list, list]] = {"model": ([], []), "model, earlier scoring": ([], []), "stats": ([], [])}
    for logmel in logmels:
        middle = logmel.shape[1] // 2
        for side, segment in enumerate((logmel[:, max(0, middle - size) : middle], logmel[:, middle : middle + size])):
            as_query = track_crops(segment, model.embed.crops, length)
            earlier = track_crops(segment, max(1, segment.shape[1] // length), length)
            pairs["model"][side].append(encode_crops(model, torch.from_numpy(as_query), torch.device("cpu")))
            pairs["model, earlier scoring"][side].append(
                encode_crops(model, torch.from_numpy(earlier), torch.device("cpu"))
            )
            pairs["stats"][side].append(metrics.logmel_statistics(segment))
    first, second = (np.stack(side) for side in pairs["model"])
    if post is not None:
        first, second = post.apply(first), post.apply(second)
    both = metrics.standardise(np.concatenate([np.stack(side) for side in pairs["stats"]]))
    return {
        "model": (first, second),
        "model, earlier scoring": tuple(np.stack(side) for side in pairs["model, earlier scoring"]),
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
    print(f"{'':24}" + "".join(f"{c:>16}" for c in columns))
    for name, row in figures.items():
        print(f"{name:24}" + "".join(f"{row[c]:16.3f}" if c in row else f"{'':16}" for c in columns))


if __name__ == "__main__":
    main()

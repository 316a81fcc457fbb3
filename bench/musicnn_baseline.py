"""Pretrained MusiCNN (musicnn 0.1.0) as a similarity baseline on the labelled development set.

    ~/musicnn-venv/bin/python bench/musicnn_baseline.py [--devset ~/.cache/musimilar-devset] [--cache ~/.cache/musicnn]
                                                        [--middle-only]

Standalone: runs in its own environment (musicnn, tensorflow-cpu 2.15, librosa; see docs/quality-musicnn.md)
and does not import musimilar. For each track, two excerpts: the middle 30 s (as the reference baselines in
bench/quality.py) and the whole track (first 10 min at most). Each excerpt goes through MSD_musicnn and
MTT_musicnn exactly as musicnn's extractor(..., extract_features=True) does it (16 kHz, 96-band log-mel, 3 s
non-overlapping patches); track vectors are the mean over patches of (a) the taggram (50 tag probabilities),
(b) 'penultimate' (200-unit dense layer), (c) 'max_pool' (753 dims). Each set of vectors is z-scored per
dimension across tracks (dead, constant dimensions become 0; 'dims' counts those used), then compared by cosine.
Figures: label precision@10 and leave-one-out kNN@10 accuracy (similarity-weighted vote, query excluded), over
all tracks of the set; chance is the expected precision@10 of random neighbours.

Per-patch outputs are cached under --cache, one .npz per track, model and excerpt. --middle-only decodes and scores
the middle 30 s excerpt alone (the whole tracks cost about five times as much on the 303-track set).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

K = 10
MODELS = ("MSD_musicnn", "MTT_musicnn")
EXCERPTS = ("middle 30 s", "whole (≤10 min)")
MIDDLE_SECONDS = 30.0
WHOLE_SECONDS = 600.0
REPRESENTATIONS = {"taggram": "taggram", "penultimate": "penultimate", "max_pool": "max_pool"}
BATCH = 32  # patches per run; in inference mode the outputs do not depend on it (batch norm uses stored stats)


# ---------------------------------------------------------------- metrics (numpy, cosine, query left out)

RELATIVE_CONSTANT = 1e-5  # a dimension whose spread across tracks is below this share of its size is constant


def standardise(vectors: np.ndarray) -> np.ndarray:
    """z-score each dimension across tracks; a constant dimension becomes 0.

    Constant means a spread below RELATIVE_CONSTANT of the dimension's mean magnitude, not just exactly 0: many
    'max_pool' units are dead (the same value for every input), and averaging float32 outputs over a different
    number of patches per track leaves them differing by ~1e-7 relative; z-scoring would blow that rounding up
    to unit variance and swamp the real dimensions."""
    vectors = np.asarray(vectors, dtype=np.float64)
    spread = vectors.std(axis=0)
    constant = spread <= np.maximum(RELATIVE_CONSTANT * np.abs(vectors).mean(axis=0), 1e-12)
    return np.where(constant, 0.0, (vectors - vectors.mean(axis=0)) / np.where(constant, 1.0, spread))


def neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each track's k most cosine-similar other tracks, best first: (indices [N, k], similarities [N, k])."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)  # the query itself is never its own neighbour
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def precision_at_k(labels: np.ndarray, order: np.ndarray) -> float:
    """Mean over queries of the share of their k neighbours that have the query's label."""
    return float((labels[order] == labels[:, None]).mean())


def knn_accuracy(labels: np.ndarray, order: np.ndarray, sims: np.ndarray) -> float:
    """Leave-one-out kNN: each neighbour votes for its label with its cosine (negatives count 0); a tie goes
    to the label of the nearest tied neighbour. Share of tracks whose label wins."""
    correct = 0
    for query in range(len(labels)):
        scores: dict[str, float] = {}
        for neighbour, sim in zip(order[query], sims[query]):
            scores[labels[neighbour]] = scores.get(labels[neighbour], 0.0) + max(float(sim), 0.0)
        best = max(scores.values())
        winner = next(labels[n] for n in order[query] if scores[labels[n]] >= best - 1e-9)
        correct += winner == labels[query]
    return correct / len(labels)


def chance_precision(labels: np.ndarray) -> float:
    """Expected precision@k of k other tracks drawn at random: mean of (same-label others) / (all others)."""
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return float(((counts[codes] - 1) / (len(labels) - 1)).mean())


# ---------------------------------------------------------------- MusiCNN, as musicnn.extractor does it


def log_mel(audio: np.ndarray, config) -> np.ndarray:
    """musicnn's input representation [frames, 96] (same steps as musicnn.extractor.batch_data)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=config.SR, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE, n_mels=config.N_MELS
    ).T
    return np.log10(10000 * mel.astype(np.float16) + 1)


def patches(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """Non-overlapping patches of n_frames [P, n_frames, 96] (extractor's default input_overlap=False)."""
    starts = range(0, mel.shape[0] - n_frames + 1, n_frames)
    return np.stack([mel[s : s + n_frames] for s in starts])


class Tagger:
    """One musicnn model in its own TF1 graph and session, restored from the checkpoint the package ships."""

    def __init__(self, model: str, n_frames: int):
        import musicnn
        import tensorflow as tf
        from musicnn import configuration as config
        from musicnn import models

        labels = config.MTT_LABELS if model.startswith("MTT") else config.MSD_LABELS
        self.tags = list(labels)
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                y, _, _, _, _, _, _, max_pool, penultimate = models.define_model(
                    self.x, self.is_training, model, len(labels)
                )
                self.outputs = {"taggram": tf.nn.sigmoid(y), "penultimate": penultimate, "max_pool": max_pool}
            options = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
            self.session = tf.compat.v1.Session(graph=self.graph, config=options)
            prefix = os.path.join(os.path.dirname(musicnn.__file__), model) + "/"
            tf.compat.v1.train.Saver().restore(self.session, prefix)  # raises if any variable is missing
            # musicnn's own extractor swallows a failed restore; check that the weights really are the stored ones
            reader = tf.compat.v1.train.NewCheckpointReader(prefix)
            variable = tf.compat.v1.global_variables()[0]
            stored = reader.get_tensor(variable.op.name)
            if not np.array_equal(self.session.run(variable), stored):
                raise RuntimeError(f"{model}: weights were not restored from {prefix}")

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        parts = [
            self.session.run(self.outputs, {self.x: batch[i : i + BATCH], self.is_training: False})
            for i in range(0, len(batch), BATCH)
        ]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.outputs}


def load_audio(path: Path, sr: int, middle_only: bool) -> np.ndarray:
    """As musicnn: librosa, mono at `sr`; with `middle_only`, only the middle 30 s is decoded."""
    import librosa

    if not middle_only:
        return librosa.load(str(path), sr=sr)[0]
    offset = max(0.0, librosa.get_duration(path=str(path)) / 2 - MIDDLE_SECONDS / 2)
    return librosa.load(str(path), sr=sr, offset=offset, duration=MIDDLE_SECONDS)[0]


def cut_excerpts(audio: np.ndarray, sr: int, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    duration = len(audio) / sr
    start = int(max(0.0, duration / 2 - MIDDLE_SECONDS / 2) * sr)
    cuts = {
        "middle 30 s": audio[start : start + int(MIDDLE_SECONDS * sr)],
        "whole (≤10 min)": audio[: int(WHOLE_SECONDS * sr)],
    }
    return {name: cuts[name] for name in wanted}


def cache_file(cache: Path, model: str, excerpt: str, path: str) -> Path:
    key = hashlib.sha1(path.encode()).hexdigest()[:12] + "-" + Path(path).stem
    return cache / model / ("middle30" if excerpt.startswith("middle") else "whole600") / f"{key}.npz"


def extract_all(
    devset: Path, paths: list[str], cache: Path, excerpts: tuple[str, ...] = EXCERPTS
) -> dict[tuple[str, str], list[dict[str, np.ndarray]]]:
    """{(model, excerpt): per track {'taggram' [P, 50], 'penultimate' [P, 200], 'max_pool' [P, 753]}}."""
    import librosa
    from musicnn import configuration as config

    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    taggers: dict[str, Tagger] = {}
    results = {(m, e): [] for m in MODELS for e in excerpts}
    started = time.perf_counter()
    for number, path in enumerate(paths, 1):
        files = {(m, e): cache_file(cache, m, e, path) for m in MODELS for e in excerpts}
        if not all(f.is_file() for f in files.values()):
            audio = load_audio(devset / path, config.SR, middle_only=excerpts == EXCERPTS[:1])
            for excerpt, clip in cut_excerpts(audio, config.SR, excerpts).items():
                batch = patches(log_mel(clip, config), n_frames)
                for model in MODELS:
                    if not files[model, excerpt].is_file():
                        if model not in taggers:
                            taggers[model] = Tagger(model, n_frames)
                        files[model, excerpt].parent.mkdir(parents=True, exist_ok=True)
                        np.savez(files[model, excerpt], **taggers[model].run(batch))
            print(
                f"  {number}/{len(paths)} {path} ({len(audio) / config.SR:.0f} s) "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        for key, file in files.items():
            with np.load(file) as stored:
                results[key].append({name: stored[name] for name in stored.files})
    return results


def check_against_package(devset: Path, path: str, cache: Path) -> None:
    """musicnn.extractor on one whole file must give the same taggram and features as this script.

    musicnn 0.1.0's extractor repeats the first patch's 'penultimate' for every later patch (its loop over
    batches stores the new values as backend_ but appends the stale penultimate_), so for 'penultimate' only the
    first patch can agree; this script takes every patch's own values."""
    from musicnn.extractor import extractor

    for model in MODELS:
        taggram, _, features = extractor(str(devset / path), model=model, extract_features=True)
        with np.load(cache_file(cache, model, "whole (≤10 min)", path)) as ours:
            for name, theirs in (
                ("taggram", taggram),
                ("penultimate", features["penultimate"]),
                ("max_pool", features["max_pool"]),
            ):
                gap = float(np.abs(ours[name] - theirs).max())
                first = float(np.abs(ours[name][0] - theirs[0]).max())
                print(
                    f"check {model} {name}: shape {ours[name].shape} vs {theirs.shape}, "
                    f"max |diff| first patch {first:.2e}, all patches {gap:.2e}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, default=Path.home() / ".cache" / "musimilar-devset")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "musicnn")
    parser.add_argument(
        "--check", action="store_true", help="also run musicnn's own extractor on the shortest track and compare"
    )
    parser.add_argument(
        "--middle-only", action="store_true", help="only the middle 30 s excerpt (the whole tracks cost 5x more)"
    )
    args = parser.parse_args()
    excerpts = EXCERPTS[:1] if args.middle_only else EXCERPTS

    with open(args.devset / "manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    paths = [row["path"] for row in rows]
    labels = np.array([row["label"] for row in rows])
    features = extract_all(args.devset, paths, args.cache, excerpts)

    print(f"{len(labels)} tracks, {len(set(labels))} labels; z-scored per dimension, cosine, query left out")
    print(f"{'model':12} {'excerpt':16} {'representation':17} {'dims':>7} {'p@10':>6} {'kNN@10':>7}")
    for model in MODELS:
        for excerpt in excerpts:
            for name in REPRESENTATIONS:
                vectors = np.stack([track[name].mean(axis=0) for track in features[model, excerpt]])
                standard = standardise(vectors)
                order, sims = neighbours(standard, K)
                dims = f"{int(standard.any(axis=0).sum())}/{vectors.shape[1]}"
                print(
                    f"{model:12} {excerpt:16} {'mean ' + name:17} {dims:>7} "
                    f"{precision_at_k(labels, order):6.3f} {knn_accuracy(labels, order, sims):7.3f}"
                )
    print(f"{'chance':12} {'':16} {'':17} {'':7} {chance_precision(labels):6.3f}")

    if args.check and not args.middle_only:
        shortest = min(paths, key=lambda p: len(features[MODELS[0], EXCERPTS[1]][paths.index(p)]["taggram"]))
        check_against_package(args.devset, shortest, args.cache)


if __name__ == "__main__":
    main()

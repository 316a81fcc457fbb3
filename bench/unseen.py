"""The encoder's output against the projection head's, on tracks a run never trained on, paired.

    python bench/quality.py --devset DEVSET --home HOME --minutes 30 --set train.val_fraction=0.33
    python bench/unseen.py --devset DEVSET --home HOME

A run holds its validation tracks out of training (a third of them with the setting above). Both vectors come from
the same network, the home's current model (format 2: encoder and head): each track and each 10 s segment embedded
as bench/quality.py embeds them, with the post-processing each vector had as its default (encoder: whitening with
shrinkage 0.7; projection: centring; CSLS over 20 neighbours for both). Figures for queries from the unseen tracks
and from the trained ones, searched in the whole library, and for the unseen tracks searched among themselves (a
library the model never saw); the projection minus the encoder, ± one standard error over the same queries.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import quality  # bench/quality.py: the same figures, not a copy
import torch

from musimilar.cache import CacheReader, cache_directory
from musimilar.catalog import Catalog
from musimilar.checkpoint import load_model
from musimilar.embed import embedding_crop_frames, track_crops
from musimilar.frames import frames_per_second
from musimilar.home import Home
from musimilar.postprocess import csls, fit, neighbourhood_radius, unit_rows
from musimilar.resume import load_resume_point
from musimilar.settings import load_settings

SHRINKAGE = {"encoder": 0.7, "projection": 1.0}
CSLS_K = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    paths, labels = quality.read_manifest(args.devset)
    home = Home.open(args.home.resolve())
    logmels, unseen = read_tracks(home, paths)
    vectors = embed_both(home, logmels)
    print(f"{int(unseen.sum())} of {len(unseen)} tracks never trained on")
    for library, queries in (("whole library", "unseen"), ("whole library", "trained"), ("unseen only", "unseen")):
        in_library = unseen if library == "unseen only" else np.ones(len(unseen), bool)
        scores = {kind: scored(vectors[kind], labels, in_library, SHRINKAGE[kind]) for kind in SHRINKAGE}
        asked = (unseen if queries == "unseen" else ~unseen)[in_library]
        parts = []
        for index, name in enumerate(("p@10", "kNN", "segment top-1")):
            encoder, projection = (scores[kind][index][asked] for kind in ("encoder", "projection"))
            delta = projection - encoder
            parts.append(
                f"{name} encoder {encoder.mean():.3f} projection {projection.mean():.3f} "
                f"({delta.mean():+.3f} ± {delta.std(ddof=1) / np.sqrt(len(delta)):.3f})"
            )
        print(f"{library:13} queries {queries:8}: " + " | ".join(parts))


def read_tracks(home: Home, paths: list[Path]) -> tuple[list[np.ndarray], np.ndarray]:
    """The set's log-mels in manifest order, and which tracks the home's last run held out of training."""
    settings = load_settings()
    with Catalog(home.catalog_path) as catalog:
        ids = [catalog.track_by_path(path).id for path in paths]
        placements = catalog.placements()
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    state = load_resume_point(home).state
    held_out = {state.track_ids[row] for row in state.val_rows}
    return [reader.read(placements[i]) for i in ids], np.array([i in held_out for i in ids])


@torch.no_grad()
def embed_both(home: Home, logmels: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{"encoder" | "projection": {"tracks", "first", "second"}}: unit vectors of each track and its two segments."""
    model = load_model(home.current_model_path)
    fps = frames_per_second(model.audio, model.mel)
    size, length = int(quality.SEGMENT_SECONDS * fps), embedding_crop_frames(model)
    rows: dict[str, dict[str, list]] = {kind: {"tracks": [], "first": [], "second": []} for kind in SHRINKAGE}
    for logmel in logmels:
        middle = logmel.shape[1] // 2
        parts = {
            "tracks": logmel,
            "first": logmel[:, max(0, middle - size) : middle],
            "second": logmel[:, middle : middle + size],
        }
        for part, frames in parts.items():
            h, z = model.network(torch.from_numpy(track_crops(frames, model.embed.crops, length)))
            for kind, output in (("encoder", h), ("projection", z)):
                rows[kind][part].append(torch.nn.functional.normalize(output, dim=1).mean(dim=0).numpy())
    return {kind: {part: unit_rows(np.stack(v)) for part, v in parts.items()} for kind, parts in rows.items()}


def scored(
    vectors: dict[str, np.ndarray], labels: np.ndarray, in_library: np.ndarray, shrinkage: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each library track's p@10, kNN vote (right or not) and segment top-1 (found or not), as floats."""
    tracks = vectors["tracks"][in_library]
    post = fit(tracks, True, None, shrinkage, CSLS_K)
    precision, correct = quality.per_track(post.apply(tracks), labels[in_library], post.radius)
    first = unit_rows(post.apply(vectors["first"][in_library]))
    second = unit_rows(post.apply(vectors["second"][in_library]))
    similarity = csls(first @ second.T, neighbourhood_radius(second, CSLS_K))  # as `recommend` ranks a library
    found = similarity.argmax(axis=1) == np.arange(len(similarity))
    return precision, correct.astype(float), found.astype(float)


if __name__ == "__main__":
    main()

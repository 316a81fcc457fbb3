"""Publish a home's finished training run again, as a model file of today's format.

    python bench/republish.py --home HOME
    python bench/quality.py --devset DEVSET --home HOME --reuse-model

Model files of format 1 hold the encoder alone, and their vectors are its output; since format 2 the projection head
ships too and gives the vectors. A home's resume point (training/state.pt) keeps the whole network of its last run,
so the same trained weights can be scored both ways without training again: this script rebuilds the network,
re-estimates its batch norms over plain crops of the run's training tracks (as `train` does when it ends) and
publishes it with the run's settings and the summary the current model file records. docs/quality.md ("The vector a
model ships") scores stored 30-minute runs this way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from musimilar.cache import CacheReader, cache_directory
from musimilar.catalog import Catalog
from musimilar.checkpoint import publish_model, read_model_file
from musimilar.encoder import ContrastiveModel
from musimilar.frames import crop_frames
from musimilar.home import Home
from musimilar.resume import load_resume_point
from musimilar.train import RECALIBRATION_CROPS, recalibrate_batch_norm

BATCH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    home = Home.open(args.home.resolve())
    point = load_resume_point(home)
    if point.state.stopped is None:
        raise SystemExit(f"{home.root}: the last training run has not finished")
    network = ContrastiveModel(point.settings.model)
    network.load_state_dict(point.best_model or point.model)  # open-ended runs ship their best epoch's weights
    recalibrate_batch_norm(network, plain_crops(home, point))
    summary = read_model_file(home.current_model_path).get("training", {})
    path, fingerprint = publish_model(home, point.settings, network, summary)
    print(f"{path}: model {fingerprint}, vectors {network.output_dim}-d (the projection head's outputs)")


def plain_crops(home: Home, point) -> list[torch.Tensor]:
    """Batches of random unaugmented crops of the run's training tracks, RECALIBRATION_CROPS in all."""
    settings = point.settings
    length = crop_frames(settings.augment.crop_seconds, settings.audio, settings.mel)
    with Catalog(home.catalog_path) as catalog:
        placements = catalog.placements()
    reader = CacheReader(cache_directory(home, settings.audio, settings.mel), settings.mel.n_mels)
    tracks = [placements[point.state.track_ids[row]] for row in point.state.train_rows]
    tracks = [placement for placement in tracks if placement.frames >= length]
    rng = np.random.default_rng(settings.train.seed)
    batches = []
    for _ in range(RECALIBRATION_CROPS // BATCH):
        chosen = [tracks[i] for i in rng.integers(len(tracks), size=BATCH)]
        starts = [int(rng.integers(p.frames - length + 1)) for p in chosen]
        batches.append(torch.from_numpy(np.stack([reader.read(p, s, length) for p, s in zip(chosen, starts)])))
    return batches


if __name__ == "__main__":
    main()

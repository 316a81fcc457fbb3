"""Ablations on the development set: each change alone, then the winners together, through the user's path.

    python bench/ablations.py --devset DIR (--minutes 30 | --epochs 15) [--only NAME ...] [--combined NAME,NAME]
                              [--converted HOME] [--tracks N]

Every row trains a model through `Library.train` (what `musimilar train DEVSET/audio --minutes M` runs) in its
own home under --homes, with one setting changed from the defaults (the settings are printed), then scores it
with bench/quality.py's figures. Post-processing rows (whitening, CSLS) need no training: they refit the
default row's embeddings. Standard errors: over tracks for label precision@10 (the spread of the per-track
precision / sqrt(n)) and binomial for kNN@10 accuracy. Decide on the "tune" labels; "held-out" is reported beside.
--epochs N gives every row the same number of passes instead of the same wall time: the figures then do not
depend on what else the machine runs, and each row's seconds are printed beside (multi-crop costs more a step).
--converted HOME copies that home's catalog and log-mel cache into each row's home, so the set is decoded once.
--tracks N trains on every k-th track only (a quick check that the script works, not a figure to report).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (bench/quality.py: the same figures, not a copy)

from musimilar.catalog import Catalog  # noqa: E402
from musimilar.embeddings import fit_post, load_embeddings  # noqa: E402
from musimilar.library import Library  # noqa: E402
from musimilar.settings import load_settings  # noqa: E402

# The defaults: 4 views a track, time stretch on half, temperature 0.1, bf16 where the CPU computes it natively;
# the track vectors are the projection head's outputs, centred, ranked by CSLS over 20 neighbours.
TRAINED: dict[str, dict[str, object]] = {
    "default": {},
    "earlier defaults": {"train.views_per_track": 2, "augment.stretch_p": 0.0},
    "temperature 0.2": {"train.temperature": 0.2},
    "pairs (2 views)": {"train.views_per_track": 2},
    "no time stretch": {"augment.stretch_p": 0.0},
    "float32": {"train.precision": "float32"},
    "pitch shift": {"augment.pitch_p": 0.5},
    "mix in a track": {"augment.mix_p": 0.5},
}
POST_PROCESSED: dict[str, dict[str, object]] = {  # each against the default post-processing (docs/quality.md)
    "no post-processing": {"retrieval.whiten": False, "retrieval.csls_k": 0},
    "no centring": {"retrieval.whiten": False},
    "whitening (shrinkage 0.7)": {"retrieval.whiten_shrinkage": 0.7},
    "no CSLS": {"retrieval.csls_k": 0},
    "PCA 64-d": {"retrieval.whiten_dim": 64},
    "earlier post-processing": {"retrieval.whiten_shrinkage": 0.5, "retrieval.csls_k": 10},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, required=True)
    parser.add_argument("--homes", type=Path, default=Path(".bench/ablations"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget of each row (wall minutes)")
    parser.add_argument("--epochs", type=int, default=0, help="train each row this many epochs instead (no budget)")
    parser.add_argument("--converted", type=Path, help="a home that already converted the set: its cache is copied")
    parser.add_argument("--only", action="append", default=[], help="run only these rows (repeatable)")
    parser.add_argument("--combined", default="", help="comma-separated rows whose settings make the last row")
    parser.add_argument("--tracks", type=int, default=0, help="train on this many tracks only (a quick check)")
    args = parser.parse_args()

    devset = subset_devset(args.devset, args.tracks, args.homes / "devset") if args.tracks else args.devset
    paths, labels = quality.read_manifest(devset)
    rows = {name: flags for name, flags in TRAINED.items() if not args.only or name in args.only}
    if args.combined:
        chosen = [name.strip() for name in args.combined.split(",")]
        rows["all winners combined"] = {k: v for name in chosen for k, v in {**TRAINED, **POST_PROCESSED}[name].items()}
    results = {}
    for name, flags in rows.items():
        home = args.homes / name.replace(" ", "-").replace("+", "")
        budget = {"train.epochs": args.epochs} if args.epochs else {"train.minutes": args.minutes}
        settings = {**budget, **flags}
        print(f"{name}: {json.dumps(settings)}", flush=True)
        if args.converted and not home.exists():
            copy_converted(args.converted, home)
        started = time.perf_counter()
        with Library.open(home.resolve(), flags=settings) as library:
            report = library.train([devset / "audio"]).train
        seconds = time.perf_counter() - started
        print(f"  {report.epochs} epochs, {report.steps} steps, {report.stopped}, {seconds:.0f} s", flush=True)
        results[name] = figures_with_errors(home.resolve(), paths, labels)
        print_table({name: results[name]}, flush=True)
    if "default" in results:
        for name, flags in POST_PROCESSED.items():
            if not args.only or name in args.only:
                print(f"{name}: {json.dumps(flags)} (refitted to the default row's embeddings)", flush=True)
                results[name] = figures_with_errors(args.homes.resolve() / "default", paths, labels, flags)
    print_table(results)


def copy_converted(source: Path, home: Path) -> None:
    """The catalog and log-mel cache of a home that converted the set, nothing it trained."""
    home.mkdir(parents=True)
    shutil.copyfile(source / "catalog.sqlite", home / "catalog.sqlite")
    shutil.copytree(source / "cache", home / "cache")


def subset_devset(devset: Path, count: int, destination: Path) -> Path:
    """Every k-th track of the manifest, copied, as a small development set (copies, not links: the catalog and
    quality.read_manifest must name the same files)."""
    with open(devset / "manifest.csv", newline="") as stream:
        manifest = list(csv.DictReader(stream))
    step = max(1, len(manifest) // count)
    kept = manifest[::step][:count]
    for row in kept:
        copy = destination / row["path"]
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            shutil.copyfile(devset / row["path"], copy)
    with open(destination / "manifest.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(kept)
    return destination


def figures_with_errors(
    home: Path, paths: list[Path], labels: np.ndarray, post_flags: dict[str, object] | None = None
) -> dict[str, tuple[float, float]]:
    """{figure: (value, standard error)} of the home's model: p@10 and kNN@10 on tune and held-out labels, and
    segment top-1 (quality.score's, no error given). `post_flags` refits the post-processing first."""
    library = Library.open(home)
    table = load_embeddings(library.home.embeddings_dir)
    if post_flags is not None:
        table = fit_post(table, load_settings(flags=post_flags, environ={}).retrieval)
    with Catalog(library.home.catalog_path) as catalog:
        ids = [catalog.track_by_path(path.resolve()).id for path in paths]
    vectors, radius = quality.searched_rows(table, ids)
    figures = quality.searched_figures(vectors, radius, labels, quality.label_subsets(labels))
    if post_flags is None:
        segment = quality.score(library.home, paths, labels)["model"].get("segment top-1")
        figures["segment top-1"] = (segment, float("nan"))
    library.close()
    return figures


def print_table(results: dict[str, dict[str, tuple[float, float]]], flush: bool = False) -> None:
    columns = ["p@10 all", "kNN all", "p@10 tune", "p@10 held-out", "kNN tune", "kNN held-out", "segment top-1"]
    print(f"{'':24}" + "".join(f"{c:>16}" for c in columns))
    for name, row in results.items():
        cells = []
        for column in columns:
            value, error = row.get(column, (float("nan"), float("nan")))
            cells.append(f"{value:.3f} ± {error:.3f}" if error == error else f"{value:.3f}")
        print(f"{name:24}" + "".join(f"{cell:>16}" for cell in cells), flush=flush)


if __name__ == "__main__":
    main()

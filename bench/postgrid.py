"""The retrieval post-processing refitted to stored embeddings, over a grid, without retraining.

    python bench/postgrid.py --devset DEVSET --home HOME [--home HOME2 ...] \
        [--shrinkage 0.5 0.7 0.9 1.0] [--csls 10 20 30] [--against 0.7,20]

Each home holds a model and its embeddings of the development set (bench/quality.py's homes). For every pair of
`retrieval.whiten_shrinkage` (whitening all axes; 1.0 centres only) and `retrieval.csls_k`, the post-processing is
fitted to each home's stored vectors as `embed` fits it and scored as `recommend` ranks (bench/quality.py's
figures): the mean over the homes, and the tune p@10 of each home. `--against S,K` adds, for each home, the paired
differences (over the same tracks, ± one standard error) of every cell against that cell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import quality  # bench/quality.py: the same figures, not a copy

from musimilar.catalog import Catalog
from musimilar.embeddings import load_embeddings
from musimilar.home import Home
from musimilar.postprocess import fit

COLUMNS = ["p@10 tune", "kNN tune", "p@10 held-out", "kNN held-out", "p@10 all", "kNN all"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, required=True)
    parser.add_argument("--home", type=Path, action="append", required=True)
    parser.add_argument("--shrinkage", type=float, nargs="+", default=[0.5, 0.7, 0.9, 1.0])
    parser.add_argument("--csls", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--against", help="S,K: paired differences of every cell against this one")
    args = parser.parse_args()

    paths, labels = quality.read_manifest(args.devset)
    subsets = quality.label_subsets(labels)
    stored = [stored_vectors(home, paths) for home in args.home]
    cells = {
        (s, k): [per_track(raw, s, k, labels, subsets) for raw in stored] for s in args.shrinkage for k in args.csls
    }
    print(f"{'shrinkage':>9} {'CSLS k':>6} " + "".join(f"{c:>14}" for c in COLUMNS) + "   p@10 tune, each home")
    for (s, k), per_home in cells.items():
        means = [np.mean([figure(tracks, column) for tracks in per_home]) for column in COLUMNS]
        each = " ".join(f"{figure(tracks, 'p@10 tune'):.3f}" for tracks in per_home)
        print(f"{s:9.2f} {k:6d} " + "".join(f"{m:14.3f}" for m in means) + "   " + each)
    if args.against:
        shrinkage, csls_k = args.against.split(",")
        reference = [per_track(raw, float(shrinkage), int(csls_k), labels, subsets) for raw in stored]
        print_paired(cells, reference, args.home)


def stored_vectors(root: Path, paths: list[Path]) -> np.ndarray:
    """The home's stored (not post-processed) vectors of the set's tracks, in manifest order."""
    home = Home.open(root.resolve())
    table = load_embeddings(home.embeddings_dir)
    with Catalog(home.catalog_path) as catalog:
        ids = [catalog.track_by_path(path).id for path in paths]
    return np.asarray(table.vectors[table.rows_of(ids)])


def per_track(
    raw: np.ndarray, shrinkage: float, csls_k: int, labels: np.ndarray, subsets: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{subset: (each track's p@10, whether its kNN vote is right)} with this post-processing fitted to `raw`."""
    post = fit(raw, True, None, shrinkage, csls_k)
    vectors = post.apply(raw)
    return {
        name: quality.per_track(vectors[m], labels[m], post.radius[m] if csls_k else None)
        for name, m in subsets.items()
    }


def figure(tracks: dict[str, tuple[np.ndarray, np.ndarray]], column: str) -> float:
    kind, subset = column.split(" ", 1)
    return float(tracks[subset][0 if kind == "p@10" else 1].mean())


def print_paired(cells: dict, reference: list, homes: list[Path]) -> None:
    print("\npaired differences against the reference cell, each home (± one standard error over tracks):")
    for (s, k), per_home in cells.items():
        for home, tracks, base in zip(homes, per_home, reference):
            parts = []
            for column in COLUMNS[:4]:
                kind, subset = column.split(" ", 1)
                index = 0 if kind == "p@10" else 1
                delta = tracks[subset][index].astype(float) - base[subset][index].astype(float)
                parts.append(f"{column} {delta.mean():+.3f} ± {delta.std(ddof=1) / np.sqrt(len(delta)):.3f}")
            print(f"{s:4.2f} {k:3d} {home.name:>12}: " + ", ".join(parts))


if __name__ == "__main__":
    main()

"""Paired differences between two homes' rankings of the development set, track by track.

    python bench/paired.py --devset DEVSET --base HOME_A --home HOME_B [--home HOME_C ...]

Each home holds a model and its embeddings of the set (bench/quality.py's homes). Every track's precision@10 and
kNN@10 vote are computed on the ranking `recommend` gives in each home (stored vectors, stored post-processing,
CSLS when fitted; bench/quality.py's figures), and each home is compared with the base over the same tracks: the
mean difference and its standard error, per label subset. Two runs' figures differ less, paired this way, than their
separate standard errors suggest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import quality  # bench/quality.py: the same figures, not a copy

from musimilar.catalog import Catalog
from musimilar.embeddings import load_embeddings
from musimilar.home import Home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--home", type=Path, action="append", required=True)
    args = parser.parse_args()

    paths, labels = quality.read_manifest(args.devset)
    subsets = quality.label_subsets(labels)
    base = per_track(args.base, paths, labels, subsets)
    print(f"against {args.base} (± one standard error over tracks):")
    for root in args.home:
        other = per_track(root, paths, labels, subsets)
        parts = []
        for subset in subsets:
            for index, name in ((0, "p@10"), (1, "kNN")):
                delta = other[subset][index].astype(float) - base[subset][index].astype(float)
                parts.append(f"{name} {subset} {delta.mean():+.3f} ± {delta.std(ddof=1) / np.sqrt(len(delta)):.3f}")
        print(f"{root}: " + ", ".join(parts))


def per_track(
    root: Path, paths: list[Path], labels: np.ndarray, subsets: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{subset: (each track's p@10, whether its kNN vote is right)} on the home's stored ranking."""
    home = Home.open(root.resolve())
    table = load_embeddings(home.embeddings_dir)
    with Catalog(home.catalog_path) as catalog:
        ids = [catalog.track_by_path(path).id for path in paths]
    vectors, radius = quality.searched_rows(table, ids)
    return {
        name: quality.per_track(vectors[m], labels[m], None if radius is None else radius[m])
        for name, m in subsets.items()
    }


if __name__ == "__main__":
    main()

"""Annoy index against exact search on synthetic clustered embeddings: build time, size, latency and recall@10.

Queries are tracks of the library, excluding themselves: "tracks like this one", the way `musimilar` asks.
Results go to stdout as a Markdown table, progress to stderr. `build MiB` is the anonymous memory (heap) the build
adds to the table's own, sampled every 50 ms: the forest itself grows in the index file (Annoy's on_disk_build).

    python bench/index.py --quick
    python bench/index.py --sizes 100000 --dim 256 --trees 25 50 100
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from memory import AnonymousPeak, status_kib

from musimilar.embeddings import EmbeddingTable, normalise_rows
from musimilar.index import Searcher, build_index, exact_neighbours, open_searcher, recall_at_k
from musimilar.settings import IndexSettings

GENERATE_CHUNK = 100_000  # rows generated at a time, to bound the temporary arrays
WARM_UP_QUERIES = 20


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="library sizes")
    parser.add_argument("--quick", action="store_true", help="one library of 20k tracks")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimensions")
    parser.add_argument("--clusters", type=int, default=2000, help="gaussian clusters on the unit sphere")
    parser.add_argument("--trees", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--search-k", type=int, nargs="+", default=[-1, 3000, 10000], help="-1: Annoy's default")
    parser.add_argument("--recall-queries", type=int, default=200, help="queries checked against exact search")
    parser.add_argument("--latency-queries", type=int, default=1000, help="single queries timed")
    parser.add_argument("--exact-queries", type=int, default=50, help="single exact queries timed")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=-1, help="threads building the index (-1: all cores)")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/index"), help="where indexes are built")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def clustered_table(count: int, dim: int, clusters: int, seed: int) -> EmbeddingTable:
    """A mixture of gaussian clusters of uneven size and spread, normalised onto the unit sphere.

    A point's offset from its centre has norm `spread` (0.5 to 1.0), so tracks of one cluster have cosines of about
    0.5 to 0.8: broad styles, not near-duplicates. Isotropic noise is a hard case for trees; real embeddings, with a
    lower intrinsic dimension, are easier.
    """
    rng = np.random.default_rng(seed)
    centres = normalise_rows(rng.normal(size=(clusters, dim)))  # [C, D]
    weights = rng.dirichlet(np.full(clusters, 0.5))  # uneven cluster sizes
    spreads = rng.uniform(0.5, 1.0, size=clusters)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, GENERATE_CHUNK):
        size = min(GENERATE_CHUNK, count - start)
        members = rng.choice(clusters, size=size, p=weights)
        noise = rng.standard_normal((size, dim), dtype=np.float32) / np.sqrt(dim)
        vectors[start : start + size] = normalise_rows(centres[members] + spreads[members, None] * noise)
    return EmbeddingTable(np.arange(count, dtype=np.int64), vectors, "bench", np.zeros(count, dtype=np.int64))


def time_queries(searcher: Searcher, table: EmbeddingTable, rows: np.ndarray, k: int) -> Latency:
    for row in rows[:WARM_UP_QUERIES]:
        searcher.search(table.vectors[row], k, exclude_track_ids=[int(table.track_ids[row])])
    seconds = []
    for row in rows:
        start = time.perf_counter()
        searcher.search(table.vectors[row], k, exclude_track_ids=[int(table.track_ids[row])])
        seconds.append(time.perf_counter() - start)
    p50, p99 = np.percentile(np.array(seconds) * 1000.0, [50, 99])
    return Latency(float(p50), float(p99))


def bench_size(arguments: argparse.Namespace, count: int) -> None:
    """Print one row for exact search and one per (trees, search_k) for a library of `count` tracks."""
    say(f"{count} tracks, {arguments.dim}-d: generating")
    table = clustered_table(count, arguments.dim, arguments.clusters, arguments.seed)
    rng = np.random.default_rng(arguments.seed + 1)
    recall_rows = rng.choice(count, size=min(arguments.recall_queries, count), replace=False)
    latency_rows = rng.choice(count, size=arguments.latency_queries, replace=True)
    say("exact search: ground truth and latency")
    truth = exact_neighbours(table, recall_rows, arguments.k)
    directory = arguments.workdir / f"n{count}-d{arguments.dim}"
    exact_searcher = open_searcher(table, directory, IndexSettings(), force_exact=True)
    exact = time_queries(exact_searcher, table, latency_rows[: arguments.exact_queries], arguments.k)
    prefix = f"| {count:,} | {arguments.dim} |"
    print(f"{prefix} exact | – | – | – | – | {exact.p50_ms:.2f} | {exact.p99_ms:.2f} | 1.000 | 1 |", flush=True)
    for trees in arguments.trees:
        shutil.rmtree(directory, ignore_errors=True)
        say(f"building {trees} trees")
        start, before, sampler = time.perf_counter(), status_kib("RssAnon"), AnonymousPeak()
        info = build_index(table, directory, trees=trees, jobs=arguments.jobs)
        build_seconds = time.perf_counter() - start
        build_mib = (sampler.finish()[0] - before) / 1024  # heap the build adds to the table's own
        size_mib = info.ann_path.stat().st_size / 2**20
        for search_k in arguments.search_k:
            searcher = open_searcher(table, directory, IndexSettings(trees=trees, search_k=search_k, exact_below=0))
            latency = time_queries(searcher, table, latency_rows, arguments.k)
            recall = recall_at_k(searcher, table, recall_rows, truth, arguments.k)
            print(
                f"{prefix} {trees} | {search_k} | {build_seconds:.1f} | {build_mib:.0f} | {size_mib:.0f} | "
                f"{latency.p50_ms:.2f} | "
                f"{latency.p99_ms:.2f} | {recall:.3f} | {exact.p50_ms / latency.p50_ms:.1f} |",
                flush=True,
            )
    shutil.rmtree(directory, ignore_errors=True)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    arguments = parse_arguments()
    sizes = [20_000] if arguments.quick else arguments.sizes
    print(f"recall@{arguments.k} on {arguments.recall_queries} queries; latency of single queries, self excluded\n")
    print(
        "| tracks | dim | trees | search_k | build s | build MiB | index MiB | p50 ms | p99 ms | recall@10 "
        "| exact p50 / p50 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for count in sizes:
        bench_size(arguments, count)


if __name__ == "__main__":
    main()

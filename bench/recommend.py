"""Latency of `musimilar recommend`: the cold command beside the cost of importing torch, and warm queries.

    python bench/recommend.py --home HOME --queries DIR [--repeat 5]

Cold: the whole command in a new process (`musimilar recommend FILE --format json`, and the same with a track id
of the library), against `python -c "import torch"` and against `musimilar --version` (no torch), best of --repeat,
the commands taking turns. The budget is importing torch + 0.5 s. Warm: in one process that already holds the
model and the index, a file outside the library (decoded and embedded on the fly) and a track of the library
(its stored embedding), p50 and p99 over the query files.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from musimilar.audio import AUDIO_EXTENSIONS

COLD_BUDGET_SECONDS = 0.5  # over importing torch


def best_of(commands: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Best wall time of each command; they take turns, so a slow spell of a shared machine hits every one."""
    best = {name: float("inf") for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a trained, embedded and indexed home")
    parser.add_argument("--queries", type=Path, required=True, help="audio files that are NOT in the library")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = sorted(p for p in args.queries.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        sys.exit(f"{args.queries}: no audio files")
    executable = str(Path(sys.executable).parent / "musimilar")
    recommend = [executable, "recommend", "--home", str(args.home), "--format", "json"]
    cold = best_of(
        {
            "musimilar --version": [executable, "--version"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "musimilar recommend FILE": [*recommend, str(files[0])],
            "musimilar recommend TRACK_ID": [*recommend, "1"],
        },
        args.repeat,
    )
    torch_import = cold["python -c 'import torch'"]
    print(f"cold (best of {args.repeat}; budget: import torch + {COLD_BUDGET_SECONDS} s):")
    for name, seconds in cold.items():
        verdict = ""
        if name.startswith("musimilar recommend"):
            over = seconds - torch_import
            verdict = f"   +{over * 1000:.0f} ms: {'within' if over <= COLD_BUDGET_SECONDS else 'NOT within'} budget"
        print(f"  {name:30} {seconds * 1000:8.0f} ms   {seconds / torch_import:.2f}x import torch{verdict}")

    from musimilar.library import Library

    library = Library.open(args.home.resolve(), create=False)
    started = time.perf_counter()
    ready = library.ready()
    ready.model  # loaded on the first query for a file: counted here, not in the first query's time
    opened = time.perf_counter() - started
    outside, inside = [], []
    track_ids = [str(t.id) for t in ready.catalog.tracks("ok")][: len(files)]
    for query in files:
        started = time.perf_counter()
        library.recommend([str(query)], 10)
        outside.append(time.perf_counter() - started)
    for track_id in track_ids:
        started = time.perf_counter()
        library.recommend([track_id], 10)
        inside.append(time.perf_counter() - started)
    print(
        f"warm ({ready.searcher.mode} search over {len(ready.table)} tracks; "
        f"opening model + embeddings + index {opened * 1000:.0f} ms):"
    )
    for name, values in (("file outside the library", outside), ("track of the library", inside)):
        print(
            f"  {name:28} p50 {statistics.median(values) * 1000:7.1f} ms"
            f"   p99 {percentile(values, 0.99) * 1000:7.1f} ms   ({len(values)} queries)"
        )


if __name__ == "__main__":
    main()

"""A library of 100k tracks on one machine: scan + convert, a no-op rerun, embed in 4 shards + merge (and, with
--whole-embed, in one process), index build, warm recommend queries, and the peak memory of every step, each step
in a process of its own.

The library is synthesised: `--distinct` clips made by musimilar.synth, and every file a variant of one of them
(shifted in time, scaled), so that every file has its own content and fingerprint (no twins in the catalog).
The model is an untrained encoder (weights do not change the cost); `--channels 8 16 256 --input-pool 4` keeps
the 256-d embeddings of the `small` preset at a fraction of its compute, and one crop a track, so the bench
measures the pipeline rather than the CNN: pass `--channels 32 64 128 256 --input-pool 2 --crops 8` for the `small`
preset's own cost (bench/train.py measures the model alone).

Memory: `peak RSS` is the step's VmHWM, which counts the pages of the memory-mapped spectrogram cache it touched
(file-backed: the kernel drops them under pressure); `peak anon` is the largest anonymous memory (heap) seen,
sampled every 50 ms: what the step really holds; `workers anon` is the largest of a child process (convert's
decoders). Imports are timed apart (`start-up`: mostly torch, the same for every step).

    python bench/scale.py                      # 100k tracks (~10 GB of audio and cache under --workdir)
    python bench/scale.py --tracks 10000       # a quicker check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from memory import AnonymousPeak, status_kib

STEPS = ("convert", "rerun", "model", "embed", "shard", "merge", "index", "query")
FILES_PER_FOLDER = 1000
QUERIES = 200
WARM_UP_QUERIES = 20


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=200, help="synthesised clips the files are variants of")
    parser.add_argument("--seconds", type=float, default=1.5, help="length of every file")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 256], help="encoder block widths")
    parser.add_argument("--input-pool", type=int, default=4)
    parser.add_argument("--crops", type=int, default=1, help="crops per track in the model's embed settings")
    parser.add_argument("--threads", type=int, default=None, help="musimilar's thread cap (default: the cores)")
    parser.add_argument("--workers", type=int, default=None, help="convert's decoding processes (default: cores)")
    parser.add_argument("--shards", type=int, default=4, help="the library is embedded in this many shards, merged")
    parser.add_argument("--whole-embed", action="store_true", help="also embed the whole library in one process")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/scale"))
    parser.add_argument("--keep", action="store_true", help="keep the library and home afterwards")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: run one step in this process
    parser.add_argument("--shard", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the library


def synthesise_library(folder: Path, tracks: int, distinct: int, seconds: float, sample_rate: int) -> float:
    """Write `tracks` distinct short WAV files under `folder` (1000 per subfolder); returns the seconds it took."""
    import soundfile

    from musimilar.synth import STYLES, synthesise_clip

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    clips = [synthesise_clip(STYLES[i % len(STYLES)], seconds, sample_rate, rng) for i in range(distinct)]
    for number in range(tracks):
        variant = number // distinct
        clip = np.roll(clips[number % distinct], 97 * variant) * (1.0 - 1e-4 * (variant % 1000))
        subfolder = folder / f"{number // FILES_PER_FOLDER:04d}"
        if number % FILES_PER_FOLDER == 0:
            subfolder.mkdir(parents=True, exist_ok=True)
        soundfile.write(subfolder / f"{number:07d}.wav", clip, sample_rate, subtype="PCM_16")
    return time.perf_counter() - started


# ---------------------------------------------------------------- the steps (each runs in its own process)


def bench_settings(args: argparse.Namespace) -> Any:
    from musimilar.settings import load_settings

    flags = {
        "model.channels": args.channels,
        "model.input_pool": args.input_pool,
        "embed.crops": args.crops,
        "audio.min_seconds": 1.0,
        "system.threads": args.threads,
    }
    return load_settings(environ={}, flags=flags)


def open_home(args: argparse.Namespace) -> Any:
    from musimilar.home import Home

    return Home.open(args.workdir / "home")


def step_convert(args: argparse.Namespace) -> dict[str, Any]:
    from musimilar.convert import convert

    report = convert(open_home(args), [args.workdir / "audio"], bench_settings(args), workers=args.workers)
    return {"tracks": report.converted, "unchanged": report.unchanged, "failed": len(report.failed)}


def step_model(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from musimilar.checkpoint import save_model
    from musimilar.encoder import ContrastiveModel

    settings = bench_settings(args)
    torch.manual_seed(0)
    network = ContrastiveModel(settings.model).eval()
    home = open_home(args)
    save_model(home.current_model_path, network, settings.audio, settings.mel, settings.model, settings.embed)
    return {"embedding_dim": network.output_dim}


def step_embed(args: argparse.Namespace) -> dict[str, Any]:
    from musimilar.embed import embed_library, parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    report = embed_library(open_home(args), shard=shard, device_name="cpu")
    return {"tracks": report.embedded, "failed": len(report.failed)}


def step_merge(args: argparse.Namespace) -> dict[str, Any]:
    from musimilar.embed import shard_directory
    from musimilar.embeddings import load_embeddings, merge_tables, save_embeddings

    home = open_home(args)
    tables = [load_embeddings(shard_directory(home, (i, args.shards)), mmap=False) for i in range(1, args.shards + 1)]
    merged = merge_tables([table for table in tables if table is not None])
    save_embeddings(home.embeddings_dir, merged)  # what `musimilar embed --merge` does
    return {"tracks": len(merged)}


def step_index(args: argparse.Namespace) -> dict[str, Any]:
    from musimilar.embeddings import load_embeddings
    from musimilar.index import build_index

    home = open_home(args)
    table = load_embeddings(home.embeddings_dir)
    build_index(table, home.index_dir, trees=bench_settings(args).index.trees)
    size = sum(path.stat().st_size for path in home.index_dir.rglob("*") if path.is_file())
    return {"tracks": len(table), "index_mb": round(size / 2**20, 1)}


def step_query(args: argparse.Namespace) -> dict[str, Any]:
    """Warm `recommend` by track id: with the default duplicate filter, and without it (the search path alone)."""
    from musimilar.recommend import Diversity, Recommender

    settings = bench_settings(args)
    started = time.perf_counter()
    recommender = Recommender(open_home(args), settings.index)
    opened = time.perf_counter() - started
    ids = [str(int(i)) for i in np.random.default_rng(1).choice(recommender.table.track_ids, QUERIES)]
    figures: dict[str, Any] = {"open_s": round(opened, 2), "search": recommender.searcher.mode}
    for name, diversity in (("", Diversity()), ("unfiltered_", Diversity(duplicate_similarity=None))):
        for query in ids[:WARM_UP_QUERIES]:
            recommender.recommend([query], k=10, diversity=diversity)
        timings = []
        for query in ids[WARM_UP_QUERIES:]:
            began = time.perf_counter()
            recommender.recommend([query], k=10, diversity=diversity)
            timings.append(time.perf_counter() - began)
        figures[f"{name}p50_ms"] = round(1000 * float(np.percentile(timings, 50)), 2)
        figures[f"{name}p99_ms"] = round(1000 * float(np.percentile(timings, 99)), 2)
    recommender.close()
    return figures


STEP_FUNCTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "convert": step_convert,
    "rerun": step_convert,
    "model": step_model,
    "embed": step_embed,
    "shard": step_embed,
    "merge": step_merge,
    "index": step_index,
    "query": step_query,
}


# ---------------------------------------------------------------- memory, measured inside the step's process


def run_step_here(args: argparse.Namespace) -> None:
    """The child side: run one step, print its figures as one JSON line. Imports are timed apart (start-up)."""
    started = time.perf_counter()
    import torch  # noqa: F401

    import musimilar.convert  # noqa: F401
    import musimilar.embed  # noqa: F401
    import musimilar.index  # noqa: F401
    import musimilar.recommend  # noqa: F401
    from musimilar.threads import apply_thread_limit

    apply_thread_limit(args.threads)
    startup = time.perf_counter() - started
    sampler = AnonymousPeak()
    started = time.perf_counter()
    figures = STEP_FUNCTIONS[args.step](args)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    own_kib, child_kib = sampler.finish()
    figures.update(startup_s=round(startup, 1), anon_mb=round(own_kib / 1024), workers_mb=round(child_kib / 1024))
    figures["rss_mb"] = round(status_kib("VmHWM") / 1024)
    print(json.dumps(figures))


def run_step(args: argparse.Namespace, step: str, shard: str | None = None) -> dict[str, Any]:
    """The parent side: run one step in a fresh process and read its figures."""
    command = [sys.executable, __file__, "--step", step, "--workdir", str(args.workdir), "--shards", str(args.shards)]
    command += ["--channels", *map(str, args.channels), "--input-pool", str(args.input_pool)]
    command += ["--crops", str(args.crops)]
    command += ["--workers", str(args.workers)] if args.workers else []
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--shard", shard] if shard else []
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"step {step} failed:\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"{step}{' ' + shard if shard else ''}: {figures}", file=sys.stderr)
    return figures


# ---------------------------------------------------------------- the table


def row(name: str, figures: dict[str, Any], count: int | None = None, note: str = "") -> str:
    rate = f"{count / figures['seconds']:.0f}" if count else ""
    memory = f"{figures['rss_mb']} | {figures['anon_mb']} | {figures['workers_mb'] or ''}"
    return f"| {name} | {figures['seconds']:.1f} | {figures['startup_s']} | {rate} | {memory} | {note} |"


def run_all(args: argparse.Namespace) -> None:
    audio = args.workdir / "audio"
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    seconds = synthesise_library(audio, args.tracks, args.distinct, args.seconds, 22050)
    audio_mb = sum(p.stat().st_size for p in audio.rglob("*.wav")) / 2**20
    print(f"synthesised {args.tracks} files ({audio_mb:.0f} MB) in {seconds:.0f} s", file=sys.stderr)
    results = {step: run_step(args, step) for step in ("convert", "rerun", "model")}
    if args.whole_embed:
        results["embed"] = run_step(args, "embed")
    shards = [run_step(args, "shard", f"{i}/{args.shards}") for i in range(1, args.shards + 1)]
    results.update({step: run_step(args, step) for step in ("merge", "index", "query")})
    print_table(args, results, shards)
    if not args.keep:
        shutil.rmtree(args.workdir)


def print_table(args: argparse.Namespace, results: dict[str, dict[str, Any]], shards: list[dict[str, Any]]) -> None:
    n = args.tracks
    cache_mb = sum(p.stat().st_size for p in (args.workdir / "home").rglob("*.f16*") if p.is_file()) / 2**20
    query = results["query"]
    print(
        f"{n} tracks of {args.seconds:g} s, encoder channels {args.channels}, input pool {args.input_pool}, "
        f"{args.crops} crop(s) a track, {os.cpu_count()} cores, thread cap {args.threads or 'default'}\n"
    )
    print("| step | seconds | start-up s | tracks/s | peak RSS MB | peak anon MB | workers anon MB | notes |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("scan + convert", results["convert"], results["convert"]["tracks"], f"cache {cache_mb:.0f} MB"))
    print(row("no-op rerun", results["rerun"], None, f"{results['rerun']['unchanged']} unchanged"))
    if "embed" in results:
        print(row("embed", results["embed"], results["embed"]["tracks"]))
    for number, figures in enumerate(shards, start=1):
        print(row(f"embed --shard {number}/{args.shards}", figures, figures["tracks"]))
    total = {key: max(figures[key] for figures in shards) for key in ("rss_mb", "anon_mb", "workers_mb", "startup_s")}
    total["seconds"] = sum(figures["seconds"] for figures in shards)
    print(row(f"embed, {args.shards} shards together", total, sum(f["tracks"] for f in shards), "memory: largest"))
    print(row("merge", results["merge"], None, f"{results['merge']['tracks']} rows"))
    print(row("index build", results["index"], None, f"{results['index']['index_mb']} MB on disk"))
    note = (
        f"{query['search']}: p50 {query['p50_ms']} ms, p99 {query['p99_ms']} ms; without the duplicate filter "
        f"p50 {query['unfiltered_p50_ms']} ms, p99 {query['unfiltered_p99_ms']} ms; open {query['open_s']} s"
    )
    print(row("recommend, warm", query, None, note))


def main() -> None:
    args = parse_arguments()
    args.workdir = args.workdir.resolve()
    if args.step:
        run_step_here(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()

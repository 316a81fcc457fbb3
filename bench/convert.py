"""`musimilar convert` against decoding alone and against the librosa pipeline a user would write.

Three ways through the same files, each in a pool of the same number of worker processes:
  decode-only   soundfile decodes every file in full to float32 (native rate and channels): the floor
  librosa       librosa.load(sr=22050) + librosa.feature.melspectrogram + power_to_db
  convert       musimilar.convert.convert into a fresh home (scan, catalog, decode, log-mel, cache, commit)
Each is run `--repeats` times, alternating, and the best time is kept. Results go to stdout as a Markdown table,
progress to stderr.

    python bench/convert.py                                  # 50+ synthesised 30 s files, mp3 and ogg
    python bench/convert.py --audio ~/Music --limit 30       # real files
    python bench/convert.py --profile                        # and where convert's time goes (cProfile)
    python bench/convert.py --decoders                       # libsndfile against FFmpeg (PyAV), per format
    python bench/convert.py --long-file 3600                 # peak memory of converting one hour-long file

--decoders decodes one synthesised clip, written in every format, with each reader that reads it (one process,
best of --repeats): musimilar.audio.decode(decoder=...), so both include the down-mix and the soxr resampling.
--long-file converts one synthesised file of that many seconds (44.1 kHz stereo flac and m4a) in a child process
and reports its peak resident memory.
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy and torch are imported)
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one process per core: no library may start threads of its own

import argparse
import cProfile
import io
import math
import multiprocessing
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from musimilar.audio import AUDIO_EXTENSIONS
from musimilar.convert import convert
from musimilar.home import Home
from musimilar.settings import Settings
from musimilar.synth import style_names, write_library

SYNTH_RATE = 44100  # like a CD rip: convert must resample to 22050 Hz
SYNTH_FORMATS = ("mp3", "ogg")
COMPLETE_MARKER = ".complete"
TARGET_RATIO = 1.3  # convert should take at most this many times as long as decoding alone


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50, help="synthesised files (at least; rounded up per style)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each synthesised file")
    parser.add_argument("--audio", type=Path, help="benchmark these real files instead of synthesised ones")
    parser.add_argument("--limit", type=int, default=30, help="with --audio: files used, spread over the folder")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for every method")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method; the best counts")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["decode-only", "librosa", "convert"],
        choices=["decode-only", "librosa", "convert"],
    )
    parser.add_argument("--profile", action="store_true", help="profile one convert run with one worker")
    parser.add_argument("--decoders", action="store_true", help="compare libsndfile and FFmpeg decoding per format")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="with --decoders: the clip's length")
    parser.add_argument("--long-file", type=float, metavar="SECONDS", help="peak memory of converting one long file")
    parser.add_argument("--workdir", type=Path, default=Path(".bench"), help="synthesised audio and homes go here")
    return parser.parse_args()


def synthesised_files(workdir: Path, files: int, seconds: float) -> list[Path]:
    """Synthesise (once; later runs reuse them) 44.1 kHz stereo clips in mp3 and ogg."""
    styles = len(style_names())
    per_style = math.ceil(files / styles)
    directory = workdir / "convert-audio" / f"{styles * per_style}x{seconds:g}s"
    if not (directory / COMPLETE_MARKER).exists():
        shutil.rmtree(directory, ignore_errors=True)
        message(f"synthesising {styles * per_style} clips of {seconds:g} s into {directory} (once)")
        write_library(
            directory,
            styles=styles,
            per_style=per_style,
            seconds=seconds,
            sample_rate=SYNTH_RATE,
            formats=SYNTH_FORMATS,
            stereo=True,
            progress=lambda done, total: message(f"  {done}/{total}"),
        )
        (directory / COMPLETE_MARKER).touch()
    return audio_files(directory)


def real_files(directory: Path, limit: int) -> list[Path]:
    """`limit` files spread evenly over the sorted list of audio files under `directory`."""
    found = audio_files(directory)
    if not found:
        raise SystemExit(f"{directory}: no audio files")
    step = max(1, len(found) // limit)
    return found[::step][:limit]


def audio_files(directory: Path) -> list[Path]:
    return sorted(p.resolve() for p in directory.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


# ---- the three methods; each worker returns a count so no samples travel between processes


def decode_only(path: Path) -> int:
    samples, _ = soundfile.read(str(path), dtype="float32", always_2d=True)  # [frames, channels]
    return samples.shape[0]


def librosa_pipeline(path: Path) -> int:
    import librosa

    samples, rate = librosa.load(str(path), sr=22050)
    power = librosa.feature.melspectrogram(y=samples, sr=rate, n_fft=2048, hop_length=512, n_mels=128)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).shape[1]


def run_pool(job: Callable[[Path], int], files: list[Path], workers: int) -> float:
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(job, files, chunksize=1):
            pass
    return time.perf_counter() - started


def run_convert(files: list[Path], workers: int, homes: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=homes))
    try:
        started = time.perf_counter()
        report = convert(Home.open(home), files, Settings(), workers=workers)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if report.failed or report.converted != len(files):
        raise SystemExit(f"convert failed on {len(report.failed)} files: {report.failed[:3]}")
    return seconds


def warm_imports() -> None:
    """Import what the workers use before forking them, so no method pays for imports inside its timing."""
    import librosa
    import librosa.feature  # noqa: F401
    import torch  # noqa: F401
    import torchaudio  # noqa: F401

    from musimilar import mel, tags  # noqa: F401

    librosa.resample(np.zeros(4410, dtype=np.float32), orig_sr=44100, target_sr=22050)


def profile_convert(files: list[Path], homes: Path) -> str:
    """cProfile of convert with one worker (in-process, so the profile sees the decoding and the mel)."""
    profiler = cProfile.Profile()
    home = Path(tempfile.mkdtemp(prefix="profile-", dir=homes))
    try:
        profiler.enable()
        convert(Home.open(home), files, Settings(), workers=1)
        profiler.disable()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    return text.getvalue()


# ---- libsndfile against FFmpeg

BOTH_READ = ("wav", "flac", "ogg", "opus", "mp3")  # formats libsndfile reads; FFmpeg reads them too
FFMPEG_ONLY = ("m4a", "alac.m4a", "wma", "webm", "mka", "wv")


def compare_decoders(workdir: Path, seconds: float, repeats: int) -> None:
    from musimilar.audio import decode
    from musimilar.audio.formats import prefers_sndfile
    from musimilar.settings import AudioSettings

    clips = clip_in_every_format(workdir / "decoders", seconds)
    settings = AudioSettings()

    def best_time(path: Path, decoder: str) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            decode(path, settings, decoder=decoder)
            times.append(time.perf_counter() - started)
        return min(times)

    print(f"one {seconds:g} s clip, {SYNTH_RATE} Hz stereo, decoded to 22050 Hz mono; one process, best of {repeats}\n")
    print("| format | libsndfile s | FFmpeg s | FFmpeg / libsndfile | chosen |")
    print("|---|---:|---:|---:|---|")
    for name in BOTH_READ:
        sndfile, ffmpeg = best_time(clips[name], "libsndfile"), best_time(clips[name], "ffmpeg")
        chosen = "libsndfile" if prefers_sndfile(clips[name]) else "FFmpeg"
        print(f"| {name} | {sndfile:.3f} | {ffmpeg:.3f} | {ffmpeg / sndfile:.2f}x | {chosen} |")
    for name in FFMPEG_ONLY:
        ffmpeg = best_time(clips[name], "ffmpeg")
        print(f"| {name} | - | {ffmpeg:.3f} ({seconds / ffmpeg:.0f}x real time) | - | FFmpeg |")


def clip_in_every_format(directory: Path, seconds: float) -> dict[str, Path]:
    from musimilar.synth import get_style, synthesise_clip, write_audio

    clip = synthesise_clip(get_style("techno"), seconds, SYNTH_RATE, np.random.default_rng(0), stereo=True)
    paths = {name: directory / f"clip-{seconds:g}s.{name}" for name in (*BOTH_READ, *FFMPEG_ONLY)}
    for path in paths.values():
        if not path.exists():
            message(f"writing {path}")
            write_audio(path, clip, SYNTH_RATE)
    return paths


LONG_FILE_CONVERT = """
import resource, sys
from pathlib import Path
from musimilar.convert import convert
from musimilar.home import Home
from musimilar.settings import Settings

report = convert(Home.open(Path(sys.argv[1])), [Path(sys.argv[2])], Settings(), workers=1)
assert report.converted == 1, report.failed
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def long_file_memory(workdir: Path, seconds: float) -> None:
    """Peak RSS of a fresh process converting one long file, per format (the kept middle 600 s is decoded)."""
    import subprocess

    print(f"one {seconds / 60:g}-minute file, {SYNTH_RATE} Hz stereo, converted in a fresh process (1 worker)\n")
    print("| format | file MB | peak RSS MB | seconds |")
    print("|---|---:|---:|---:|")
    for extension in ("flac", "m4a"):
        path = workdir / "long" / f"long-{seconds:g}s.{extension}"
        if not path.exists():
            message(f"writing {path}")
            write_long_file(path, seconds)
        home = Path(tempfile.mkdtemp(prefix="long-", dir=workdir))
        started = time.perf_counter()
        peak = subprocess.run(
            [sys.executable, "-c", LONG_FILE_CONVERT, str(home), str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        elapsed = time.perf_counter() - started
        shutil.rmtree(home, ignore_errors=True)
        print(f"| {extension} | {path.stat().st_size / 1e6:.0f} | {int(peak) / 1e6:.0f} | {elapsed:.1f} |")


def write_long_file(path: Path, seconds: float, block_seconds: float = 10.0) -> None:
    """A tone in noise, encoded block by block (an hour of float32 stereo would take 1.3 GB here)."""
    import av

    container_format, codec = {".flac": ("flac", "flac"), ".m4a": ("ipod", "aac")}[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    block = int(block_seconds * SYNTH_RATE)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=SYNTH_RATE)
        stream.layout = "stereo"
        for start in range(0, int(seconds * SYNTH_RATE), block):
            t = (start + np.arange(block)) / SYNTH_RATE
            tone, noise = 0.3 * np.sin(2 * np.pi * 220 * t), rng.normal(0, 0.05, block)
            planar = np.stack([tone + noise, tone - noise]).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SYNTH_RATE, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def message(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    arguments = parse_arguments()
    if arguments.decoders:
        compare_decoders(arguments.workdir, arguments.clip_seconds, arguments.repeats)
        return
    if arguments.long_file:
        long_file_memory(arguments.workdir, arguments.long_file)
        return
    files = (
        real_files(arguments.audio, arguments.limit)
        if arguments.audio
        else synthesised_files(arguments.workdir, arguments.files, arguments.seconds)
    )
    audio_seconds = sum(soundfile.info(str(path)).duration for path in files)
    homes = arguments.workdir / "convert-homes"
    homes.mkdir(parents=True, exist_ok=True)
    warm_imports()

    runners = {
        "decode-only": lambda: run_pool(decode_only, files, arguments.workers),
        "librosa": lambda: run_pool(librosa_pipeline, files, arguments.workers),
        "convert": lambda: run_convert(files, arguments.workers, homes),
    }
    best: dict[str, float] = {}
    for repeat in range(arguments.repeats):
        for name in arguments.methods:  # alternate, so a slow spell of a shared machine hits every method
            seconds = runners[name]()
            message(f"run {repeat + 1}/{arguments.repeats}: {name:12s} {seconds:7.2f} s")
            best[name] = min(seconds, best.get(name, math.inf))

    source = arguments.audio or f"synthesised ({SYNTH_RATE} Hz stereo, {'/'.join(SYNTH_FORMATS)})"
    print(
        f"{len(files)} files from {source}: {audio_seconds / 60:.1f} min of audio; {arguments.workers} workers, "
        f"best of {arguments.repeats}\n"
    )
    print("| method | seconds | x real-time | vs decode-only |")
    print("|---|---:|---:|---:|")
    floor = best.get("decode-only")
    for name, seconds in best.items():
        ratio = f"{seconds / floor:.2f}x" if floor else "-"
        print(f"| {name} | {seconds:.2f} | {audio_seconds / seconds:.0f} | {ratio} |")
    if floor and "convert" in best:
        verdict = "within" if best["convert"] <= TARGET_RATIO * floor else "NOT within"
        print(f"\nconvert is {verdict} {TARGET_RATIO}x of decode-only")
    if arguments.profile:
        print("\n```\n" + profile_convert(files, homes) + "```")


if __name__ == "__main__":
    main()

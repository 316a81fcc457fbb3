"""Training throughput: the full `train` path against the model alone fed with tensors already on the device.

    python bench/train.py [--audio DIR] [--size small] [--device auto] [--batch-size 64] [--steps 20] [--precision both]
    python bench/train.py --device cuda --batch-size 256 --steps 50 --compile both \
        --per-style 128 --clip-seconds 10 --crops-per-track 16 --epochs 3                 # one GPU run, everything
    python bench/train.py --device cpu --size small --batch-size 8 --steps 2 --per-style 4 --clip-seconds 8  # check

The model-alone figure is the limit (no cache reads, no augmentation, no copies): a forward and backward pass of
both views and an optimizer step. The full path reads crops from the memory-mapped cache in background threads,
augments them on the device and trains, as `musimilar train` does. Both count pairs per second, side by side, with
the same precision (bf16 autocast where the device computes it natively: recent GPUs, AVX512-BF16/AMX CPUs),
memory format (channels_last on CUDA and the CPU) and, with `--compile on` or `both`, the same `torch.compile`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from musimilar.devices import autocast, autocast_dtype, fast_memory_format, pick_device
from musimilar.encoder import ContrastiveModel
from musimilar.frames import crop_frames
from musimilar.library import Library
from musimilar.losses import nt_xent
from musimilar.synth import write_library


def model_alone(settings, device: torch.device, steps: int) -> float:
    """Pairs per second of forward + backward + step on random log-mels already on the device."""
    model = ContrastiveModel(settings.model).to(device).to(memory_format=fast_memory_format(device))
    network = torch.compile(model) if settings.train.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames = crop_frames(settings.augment.crop_seconds, settings.audio, settings.mel)
    batch = settings.train.batch_size
    views = torch.randn(2 * batch, settings.mel.n_mels, frames, device=device) * 20 - 40

    def step() -> None:
        with autocast(device, settings.train.precision, training=True):
            _, z = network(views)
        loss = nt_xent(*z.float().chunk(2), 0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    _synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronise(device)
    return steps * batch / (time.perf_counter() - started)


def full_path(library: Library) -> float:
    """Pairs per second of `musimilar train` itself (second epoch on, so start-up is not counted)."""
    seen: list[tuple[float, int]] = []

    def on_progress(stage: str, done: int, total: int, note: str) -> None:
        if stage == "train":
            seen.append((time.perf_counter(), done))

    library.train(index=False, progress=on_progress)
    steps_per_epoch = max(step for _, step in seen)
    later = seen[steps_per_epoch:]  # epochs after the first
    elapsed = later[-1][0] - later[0][0]
    return (len(later) - 1) * library.settings.train.batch_size / elapsed


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, help="a music folder (default: a synthesised one)")
    parser.add_argument("--work", type=Path, default=Path(".bench/train"))
    parser.add_argument("--size", action="append", help="model sizes to measure (default: small and base)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off", help="torch.compile the model")
    parser.add_argument(
        "--precision", choices=["auto", "float32", "both"], default="auto", help="train.precision (auto: native bf16)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="of the full path; the first is not timed")
    parser.add_argument("--crops-per-track", type=int, default=4, help="pairs per track per epoch")
    parser.add_argument("--per-style", type=int, default=32, help="synthesised tracks per style (4 styles)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="length of each synthesised track")
    args = parser.parse_args()
    audio = args.audio or args.work / f"audio-{args.per_style}x{args.clip_seconds:g}s"
    if args.audio is None and not audio.is_dir():
        write_library(audio, styles=4, per_style=args.per_style, seconds=args.clip_seconds, formats=("ogg",))
    device = pick_device(args.device)
    memory = "channels_last" if fast_memory_format(device) == torch.channels_last else "contiguous"
    print(
        f"device {device} ({_device_name(device)}), batch {args.batch_size} pairs, {memory}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'size':8}{'compile':>9}{'precision':>11}{'model alone':>16}{'full path':>16}{'full / alone':>14}")
    precisions = ["float32", "auto"] if args.precision == "both" else [args.precision]
    for size in args.size or ["small", "base"]:
        for compiled in {"off": [False], "on": [True], "both": [False, True]}[args.compile]:
            for precision in precisions:
                flags = {**_flags(args, size, compiled), "train.precision": precision}
                library = Library.open(args.work / f"home-{size}", flags=flags)
                library.convert([audio])
                limit = model_alone(library.settings, device, args.steps)
                full = full_path(library)
                on = "on" if compiled else "off"
                dtype = str(autocast_dtype(device, precision, training=True) or torch.float32).replace("torch.", "")
                print(f"{size:8}{on:>9}{dtype:>11}{limit:13.1f} p/s{full:13.1f} p/s{full / limit:13.2f}x", flush=True)


def _flags(args: argparse.Namespace, size: str, compiled: bool) -> dict:
    return {
        "model.size": size,
        "train.batch_size": args.batch_size,
        "train.device": args.device,
        "train.epochs": args.epochs,
        "train.val_fraction": 0.0,
        "train.crops_per_track": args.crops_per_track,
        "train.views_per_track": 2,  # pairs, as the model-alone figure counts them
        "train.compile": compiled,
    }


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


if __name__ == "__main__":
    main()

"""Training throughput: the full `train` path against the model alone fed with tensors already on the device.

    python bench/train.py [--audio DIR] [--size small] [--device auto] [--batch-size 64] [--steps 20]

The model-alone figure is the limit (no cache reads, no augmentation, no copies): a forward and backward pass of
both views and an optimizer step. The full path reads crops from the memory-mapped cache in background threads,
augments them on the device and trains, as `musimilar train` does. Both count pairs per second, side by side.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from musimilar.devices import autocast, pick_device
from musimilar.encoder import ContrastiveModel
from musimilar.library import Library
from musimilar.losses import nt_xent
from musimilar.mel import crop_frames
from musimilar.synth import write_library


def model_alone(settings, device: torch.device, steps: int) -> float:
    """Pairs per second of forward + backward + step on random log-mels already on the device."""
    model = ContrastiveModel(settings.model).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames = crop_frames(settings.augment.crop_seconds, settings.audio, settings.mel)
    batch = settings.train.batch_size
    views = torch.randn(2 * batch, settings.mel.n_mels, frames, device=device) * 20 - 40

    def step() -> None:
        with autocast(device):
            _, z = model(views)
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
    args = parser.parse_args()
    audio = args.audio or args.work / "audio"
    if args.audio is None and not audio.is_dir():
        write_library(audio, styles=4, per_style=32, seconds=30.0, formats=("ogg",))
    device = pick_device(args.device)
    print(f"device {device}, batch {args.batch_size} pairs, torch threads {torch.get_num_threads()}")
    print(f"{'size':8}{'model alone':>16}{'full path':>16}{'full / alone':>14}")
    for size in args.size or ["small", "base"]:
        flags = {
            "model.size": size,
            "train.batch_size": args.batch_size,
            "train.device": args.device,
            "train.epochs": 2,
            "train.val_fraction": 0.0,
            "train.crops_per_track": 4,
        }
        library = Library.open(args.work / f"home-{size}", flags=flags)
        library.convert([audio])
        limit = model_alone(library.settings, device, args.steps)
        full = full_path(library)
        print(f"{size:8}{limit:13.1f} p/s{full:13.1f} p/s{full / limit:13.2f}x")


if __name__ == "__main__":
    main()

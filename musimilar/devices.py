"""Pick the compute device, and the settings that make it fast."""

from __future__ import annotations

import functools

import torch

from musimilar.errors import SettingsError
from musimilar.settings import Precision
from musimilar.threads import limit_torch_threads


def pick_device(name: str) -> torch.device:
    """'auto' is CUDA when present, else Apple's MPS, else the CPU; an explicit device must exist.

    Every command that computes with torch picks its device first: the thread cap (threads.py) reaches torch here.
    """
    limit_torch_threads()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingsError("--device cuda: no CUDA GPU is available (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError("--device mps: Apple's MPS backend is not available")
    return torch.device(name)


@functools.cache  # asked at every training step; the CPU does not change
def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_dtype(
    device: torch.device, precision: Precision = "auto", *, training: bool = False
) -> torch.dtype | None:
    """bf16 autocast where the device computes it natively, unless `precision` asks for float32: on GPUs that
    support it, every forward pass; on CPUs with AVX512-BF16 or AMX, training only (twice the steps in a time
    budget), while embeddings and queries stay float32 there (no kernel set-up on a cold query, and a library's
    vectors do not depend on which CPU embedded them)."""
    if precision != "auto":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if training and device.type == "cpu" and native_cpu_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, precision: Precision = "auto", *, training: bool = False) -> torch.autocast:
    """The mixed-precision context every forward pass runs in (a no-op where `autocast_dtype` is None)."""
    dtype = autocast_dtype(device, precision, training=training)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def fast_memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last convolutions: faster on CUDA and on the CPU (oneDNN), both in float32 and in bf16."""
    return torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format

"""Pick the compute device, and the settings that make it fast."""

from __future__ import annotations

import torch

from musimilar.errors import SettingsError
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


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device) -> torch.autocast:
    """The mixed-precision context every forward pass runs in (a no-op where `autocast_dtype` is None)."""
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

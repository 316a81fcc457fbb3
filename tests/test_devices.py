"""Precision and memory format: bf16 only where the device computes it natively, and only when asked for."""

from __future__ import annotations

import pytest
import torch

from musimilar import devices
from musimilar.encoder import ContrastiveModel
from musimilar.settings import ModelSettings, TrainSettings

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_training_is_bf16_exactly_where_the_cpu_computes_it(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    devices.native_cpu_bf16.cache_clear()
    monkeypatch.setattr(devices, "native_cpu_bf16", devices.native_cpu_bf16.__wrapped__)
    assert devices.native_cpu_bf16() is native
    assert devices.autocast_dtype(CPU, training=True) == (torch.bfloat16 if native else None)
    assert devices.autocast_dtype(CPU, "float32", training=True) is None
    assert devices.autocast_dtype(CPU) is None  # embeddings and queries stay float32 on any CPU


def test_float32_precision_keeps_the_forward_pass_in_float32(monkeypatch) -> None:
    monkeypatch.setattr(devices, "native_cpu_bf16", lambda: True)
    model = ContrastiveModel(ModelSettings(size="small"))
    batch = torch.randn(2, 128, 64)
    with devices.autocast(CPU, "float32", training=True):
        _, z = model(batch)
    assert z.dtype == torch.float32
    with devices.autocast(CPU, training=True):
        _, z = model(batch)
    assert z.dtype == torch.bfloat16


def test_training_precision_is_a_setting_a_resumed_run_may_change() -> None:
    from musimilar.resume import MACHINE_SPECIFIC

    assert TrainSettings().precision == "auto"
    assert TrainSettings(precision="float32").precision == "float32"
    assert "precision" in MACHINE_SPECIFIC
    with pytest.raises(ValueError):
        TrainSettings(precision="float16")


def test_convolutions_run_channels_last_on_the_cpu() -> None:
    assert devices.fast_memory_format(CPU) == torch.channels_last

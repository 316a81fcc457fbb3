import math

import pytest
import torch

from musimilar.augment import (
    KINDS,
    Augmenter,
    add_noise,
    choose_kinds,
    draw_bands,
    freq_mask,
    gain_contrast,
    mask_bands,
    mix_in,
    pitch_shift,
    reverse_time,
    shift_and_scale,
    style_augment,
    time_mask,
    time_stretch,
)
from musimilar.settings import AugmentSettings

N_MELS, FRAMES = 32, 48


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def log_mel(size: int = 8, n_mels: int = N_MELS, frames: int = FRAMES, seed: int = 1) -> torch.Tensor:
    """A batch that looks like log-mel in dB: about -40 dB with 10 dB of spread, no two values equal."""
    return -40.0 + 10.0 * torch.randn(size, n_mels, frames, generator=seeded(seed))  # [B, n_mels, T]


def sample_mean(batch: torch.Tensor) -> torch.Tensor:
    return batch.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]


def test_each_augmentation_keeps_shape() -> None:
    batch = log_mel()
    views = [
        gain_contrast(batch, 6.0, 0.25, seeded()),
        add_noise(batch, (10.0, 30.0), seeded()),
        reverse_time(batch),
        freq_mask(batch, 8, 2, seeded()),
        time_mask(batch, 8, 2, seeded()),
        Augmenter(AugmentSettings())(batch, seeded()),
    ]
    for view in views:
        assert view.shape == batch.shape
        assert view.dtype == torch.float32


def test_shift_moves_each_mean_by_the_asked_db() -> None:
    batch = log_mel()
    shift_db = torch.linspace(-6.0, 6.0, len(batch))
    shifted = shift_and_scale(batch, shift_db, torch.ones(len(batch)))
    torch.testing.assert_close(sample_mean(shifted) - sample_mean(batch), shift_db[:, None, None])


def test_contrast_scales_the_spread_about_the_mean() -> None:
    batch = log_mel()
    scale = torch.linspace(0.75, 1.25, len(batch))
    scaled = shift_and_scale(batch, torch.zeros(len(batch)), scale)
    torch.testing.assert_close(sample_mean(scaled), sample_mean(batch))
    torch.testing.assert_close(scaled.std(dim=(1, 2)), batch.std(dim=(1, 2)) * scale)


def test_gain_shift_stays_in_range() -> None:
    batch = log_mel(size=256)
    shift = gain_contrast(batch, 6.0, 0.0, seeded()) - batch  # contrast 0: a pure level shift
    per_sample = shift[:, :1, :1]  # [B, 1, 1]
    torch.testing.assert_close(shift, per_sample.expand_as(shift), atol=1e-4, rtol=0)
    assert per_sample.abs().max() <= 6.0 and per_sample.abs().max() > 4.0


def test_noise_realises_the_asked_snr() -> None:
    batch = log_mel(size=64, n_mels=64, frames=100)
    noise = add_noise(batch, (20.0, 20.0), seeded()) - batch
    realised = 10 * torch.log10(batch.var(dim=(1, 2), correction=0) / noise.var(dim=(1, 2), correction=0))  # [B]
    assert abs(realised.mean().item() - 20.0) < 0.1
    assert (realised - 20.0).abs().max() < 0.5
    assert noise.mean().abs() < 0.05


def test_noise_snr_spans_its_range() -> None:
    batch = log_mel(size=128)
    noise = add_noise(batch, (10.0, 30.0), seeded()) - batch
    realised = 10 * torch.log10(batch.var(dim=(1, 2)) / noise.var(dim=(1, 2)))
    assert 9.0 < realised.min() < 13.0 and 27.0 < realised.max() < 31.0


def test_reversal_reverses_and_twice_is_identity() -> None:
    batch = log_mel()
    reversed_batch = reverse_time(batch)
    assert torch.equal(reversed_batch[:, :, 0], batch[:, :, -1])
    assert torch.equal(reversed_batch[:, :, 5], batch[:, :, FRAMES - 6])
    assert torch.equal(reverse_time(reversed_batch), batch)


@pytest.mark.parametrize("dim", [1, 2])
def test_masked_bands_hold_the_sample_mean(dim: int) -> None:
    batch = log_mel(size=64)
    masked = (freq_mask if dim == 1 else time_mask)(batch, 6, 2, seeded())
    fill = sample_mean(batch).expand_as(batch)
    other = 3 - dim
    in_band = (masked == fill).all(dim=other)  # [B, L]: whole rows (or columns) at the fill value
    counts = in_band.sum(dim=1)  # [B]
    assert counts.max() <= 2 * 6
    assert counts.max() > 0
    changed = (masked != batch).any(dim=other)  # [B, L]
    assert torch.equal(changed, in_band)


def test_mask_widths_and_starts_fit() -> None:
    starts, widths = draw_bands(1000, 10, 16, 3, seeded(), torch.device("cpu"))
    assert starts.shape == widths.shape == (1000, 3)
    assert widths.min() == 0 and widths.max() == 10  # the widest band is the whole axis
    assert starts.min() >= 0 and (starts + widths).max() <= 10


@pytest.mark.parametrize("dim", [1, 2])
def test_mask_bands_matches_a_per_sample_reference(dim: int) -> None:
    batch = log_mel(size=16)
    starts, widths = draw_bands(16, batch.shape[dim], 12, 3, seeded(3), batch.device)
    masked = mask_bands(batch, dim, starts, widths)
    for i in range(len(batch)):
        expected = batch[i].clone()
        for start, width in zip(starts[i].tolist(), widths[i].tolist()):
            band = expected[start : start + width] if dim == 1 else expected[:, start : start + width]
            band.fill_(batch[i].mean().item())
        torch.testing.assert_close(masked[i], expected)


def test_zero_masks_change_nothing() -> None:
    batch = log_mel()
    assert torch.equal(freq_mask(batch, 8, 0, seeded()), batch)
    assert torch.equal(time_mask(batch, 0, 2, seeded()), batch)


def test_choose_kinds_draws_per_view_kinds_uniformly() -> None:
    chosen = choose_kinds(4000, 2, (1.0,) * len(KINDS), seeded(), torch.device("cpu"))
    assert chosen.shape == (4000, len(KINDS))
    assert torch.equal(chosen.sum(dim=1), torch.full((4000,), 2))
    share = chosen.float().mean(dim=0)  # each kind is drawn with chance 2/5
    assert torch.allclose(share, torch.full_like(share, 0.4), atol=0.03)


def test_choose_kinds_applies_each_probability() -> None:
    probabilities = (1.0, 0.5, 0.0, 0.25, 1.0)
    chosen = choose_kinds(4000, 5, probabilities, seeded(), torch.device("cpu"))
    torch.testing.assert_close(chosen.float().mean(dim=0), torch.tensor(probabilities), atol=0.03, rtol=0)


def test_augmenter_is_reproducible_from_a_seed() -> None:
    augment, batch = Augmenter(AugmentSettings()), log_mel(size=32)
    assert torch.equal(augment(batch, seeded(7)), augment(batch, seeded(7)))
    assert not torch.equal(augment(batch, seeded(7)), augment(batch, seeded(8)))


def test_augmenter_without_kinds_returns_the_input() -> None:
    batch = log_mel()
    assert torch.equal(Augmenter(AugmentSettings(per_view=0, stretch_p=0))(batch, seeded()), batch)
    never = AugmentSettings(gain_p=0, noise_p=0, reverse_p=0, freq_mask_p=0, time_mask_p=0, stretch_p=0)
    assert torch.equal(Augmenter(never)(batch, seeded()), batch)


def test_augmenter_with_only_reversal_reverses_every_sample() -> None:
    only_reverse = AugmentSettings(
        per_view=5, gain_p=0, noise_p=0, reverse_p=1, freq_mask_p=0, time_mask_p=0, stretch_p=0
    )
    batch = log_mel()
    assert torch.equal(Augmenter(only_reverse)(batch, seeded()), reverse_time(batch))


def test_augmenter_changes_most_samples() -> None:
    batch = log_mel(size=256)
    view = Augmenter(AugmentSettings())(batch, seeded())
    changed = (view != batch).flatten(1).any(dim=1)
    assert 0.8 < changed.float().mean() < 1.0


def test_augmenter_treats_samples_independently() -> None:
    """A large batch runs at once, and each sample's view depends only on its own values and draws."""
    augment, batch = Augmenter(AugmentSettings(per_view=5)), log_mel(size=256)
    view = augment(batch, seeded(5))
    other = batch.clone()
    other[0] = other[0] * 2.0 + 7.0
    other_view = augment(other, seeded(5))
    assert torch.equal(view[1:], other_view[1:])
    assert not torch.equal(view[0], other_view[0])


def test_augmenter_runs_on_the_batch_device() -> None:
    batch = log_mel().to("cpu")
    assert Augmenter(AugmentSettings())(batch, seeded()).device == batch.device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmenter_on_cuda_matches_cpu_with_the_same_generator() -> None:
    augment, batch = Augmenter(AugmentSettings(per_view=5)), log_mel(size=64)
    on_gpu = augment(batch.cuda(), seeded(3))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), augment(batch, seeded(3)), atol=1e-4, rtol=1e-5)
    cuda_generator = torch.Generator(device="cuda").manual_seed(3)
    assert augment(batch.cuda(), cuda_generator).device.type == "cuda"
    assert math.isfinite(augment(batch.cuda(), cuda_generator).sum().item())


def test_pitch_shift_by_whole_bins_moves_the_spectrum_and_holds_the_edge() -> None:
    batch = log_mel(3)
    shifted = pitch_shift(batch, torch.tensor([2.0, -3.0, 0.0]))
    torch.testing.assert_close(shifted[0, 2:], batch[0, :-2])
    torch.testing.assert_close(shifted[0, :2], batch[0, :1].expand(2, -1))  # the lowest band fills the gap
    torch.testing.assert_close(shifted[1, :-3], batch[1, 3:])
    torch.testing.assert_close(shifted[2], batch[2])


def test_pitch_shift_interpolates_fractional_bins_per_sample_like_a_loop() -> None:
    batch, bins = log_mel(4), torch.tensor([0.5, -1.25, 3.75, 0.0])
    shifted = pitch_shift(batch, bins)
    for sample in range(4):
        for band in range(N_MELS):
            source = min(max(band - float(bins[sample]), 0.0), N_MELS - 1)
            low = int(math.floor(source))
            high, weight = min(low + 1, N_MELS - 1), source - low
            expected = batch[sample, low] * (1 - weight) + batch[sample, high] * weight
            torch.testing.assert_close(shifted[sample, band], expected)


def test_time_stretch_keeps_the_whole_crop_at_keep_one_and_slows_a_ramp() -> None:
    batch = log_mel(2)
    torch.testing.assert_close(time_stretch(batch, torch.ones(2), torch.zeros(2)), batch, atol=1e-3, rtol=0)
    ramp = torch.arange(FRAMES, dtype=torch.float32).expand(1, N_MELS, FRAMES).clone()
    stretched = time_stretch(ramp, torch.tensor([0.5]), torch.tensor([1.0]))  # the second half, twice as slow
    expected = torch.linspace((FRAMES - 1) / 2, FRAMES - 1, FRAMES)
    torch.testing.assert_close(stretched[0, 0], expected)


def test_mix_in_adds_powers_at_the_asked_share() -> None:
    batch, other = log_mel(3), log_mel(3, seed=2)
    torch.testing.assert_close(mix_in(batch, other, torch.zeros(3)), batch)
    share = torch.tensor([0.1, 0.25, 0.4])
    mixed = mix_in(batch, other, share)
    power = (1 - share[:, None, None]) * 10 ** (batch / 10) + share[:, None, None] * 10 ** (other / 10)
    torch.testing.assert_close(mixed, 10 * torch.log10(power))
    assert torch.all(mixed <= torch.maximum(batch, other) + 1e-4)


@pytest.mark.parametrize("kind", ["pitch_p", "stretch_p", "mix_p"])
def test_each_style_augmentation_fires_with_its_probability(kind: str) -> None:
    batch = log_mel(400, frames=16)
    off = {"pitch_p": 0.0, "stretch_p": 0.0, "mix_p": 0.0}
    never = style_augment(batch, AugmentSettings(**off), seeded())
    assert never is batch  # off: no draw, no change
    settings = AugmentSettings(**{**off, kind: 0.5})
    changed = (style_augment(batch, settings, seeded()) - batch).abs().amax(dim=(1, 2)) > 1e-4
    assert 0.35 < changed.float().mean() < 0.65
    view = Augmenter(AugmentSettings(per_view=0, **{**off, kind: 1.0}))(batch, seeded())
    assert view.shape == batch.shape and not torch.equal(view, batch)

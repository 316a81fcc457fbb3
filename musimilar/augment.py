"""Batched SimCLR views of log-mel crops.

Every function works on a whole batch `[B, n_mels, T]` of log-mel in dB at once, on the batch's device. Random draws
come from an explicit `torch.Generator`, so a seed reproduces a batch exactly. Draws are made on the generator's
device and moved to the batch: a generator on the batch's device is fastest, a CPU generator gives the same views
on every device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from musimilar.settings import AugmentSettings

# The five kinds a view draws from, in the order they are applied: level changes first, then noise, and masks last
# so that masked bands hold exactly the fill value.
KINDS: tuple[str, ...] = ("gain", "noise", "reverse", "freq_mask", "time_mask")

FREQ_DIM = 1
TIME_DIM = 2


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) float32 drawn on the generator's device, moved to `device`."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _uniform(
    batch_size: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """One uniform draw in [low, high] per sample."""
    return low + (high - low) * _rand((batch_size,), generator, device)  # [B]


def _sample_mean(batch: torch.Tensor) -> torch.Tensor:
    return batch.mean(dim=(FREQ_DIM, TIME_DIM), keepdim=True)  # [B, 1, 1]


def shift_and_scale(batch: torch.Tensor, shift_db: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scale each sample about its own mean by `scale` [B], then shift it by `shift_db` [B] dB."""
    mean = _sample_mean(batch)  # [B, 1, 1]
    return (batch - mean) * scale[:, None, None] + mean + shift_db[:, None, None]


def gain_contrast(batch: torch.Tensor, gain_db: float, contrast: float, generator: torch.Generator) -> torch.Tensor:
    """Random level shift in [-gain_db, gain_db] dB and contrast scale in [1-contrast, 1+contrast] per sample."""
    size, device = batch.shape[0], batch.device
    shift_db = _uniform(size, -gain_db, gain_db, generator, device)  # [B]
    scale = _uniform(size, 1.0 - contrast, 1.0 + contrast, generator, device)  # [B]
    return shift_and_scale(batch, shift_db, scale)


def add_noise(batch: torch.Tensor, snr_db: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise at a random SNR in `snr_db` per sample.

    SNR is defined on the spectrogram values: 10 log10(signal variance / noise variance), where the signal variance
    is the sample's variance about its own mean over all bins and frames. A constant sample gets no noise.
    """
    size, device = batch.shape[0], batch.device
    snr = _uniform(size, snr_db[0], snr_db[1], generator, device)  # [B]
    signal_var = batch.var(dim=(FREQ_DIM, TIME_DIM), correction=0)  # [B]
    noise_std = torch.sqrt(signal_var / 10.0 ** (snr / 10.0))  # [B]
    noise = torch.randn(batch.shape, generator=generator, device=generator.device).to(device)  # [B, n_mels, T]
    return batch + noise * noise_std[:, None, None]


def reverse_time(batch: torch.Tensor) -> torch.Tensor:
    """Play every sample backwards: flip along time."""
    return batch.flip(TIME_DIM)


def draw_bands(
    batch_size: int, extent: int, max_width: int, count: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` SpecAugment bands per sample: widths uniform in {0..max_width}, starts uniform where they fit.

    Returns (starts, widths), both `[B, count]` long.
    """
    max_width = min(max_width, extent)
    widths = (_rand((batch_size, count), generator, device) * (max_width + 1)).long()  # [B, count]
    starts = (_rand((batch_size, count), generator, device) * (extent - widths + 1)).long()  # [B, count]
    return starts, widths


def mask_bands(batch: torch.Tensor, dim: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Set bands [start, start + width) along `dim` (1: mel bins, 2: frames) to each sample's mean.

    The mean is taken before masking, so every masked value of a sample equals the same fill value.
    """
    positions = torch.arange(batch.shape[dim], device=batch.device)  # [L]
    ends = starts + widths  # [B, K]
    inside = (positions >= starts[..., None]) & (positions < ends[..., None])  # [B, K, L]
    band = inside.any(dim=1)  # [B, L]
    band = band[:, :, None] if dim == FREQ_DIM else band[:, None, :]  # [B, n_mels, 1] or [B, 1, T]
    return torch.where(band, _sample_mean(batch), batch)


def freq_mask(batch: torch.Tensor, max_width: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random frequency masks per sample, each up to `max_width` mel bins wide."""
    bands = draw_bands(batch.shape[0], batch.shape[FREQ_DIM], max_width, count, generator, batch.device)
    return mask_bands(batch, FREQ_DIM, *bands)


def time_mask(batch: torch.Tensor, max_width: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random time masks per sample, each up to `max_width` frames wide."""
    bands = draw_bands(batch.shape[0], batch.shape[TIME_DIM], max_width, count, generator, batch.device)
    return mask_bands(batch, TIME_DIM, *bands)


def _resample(batch: torch.Tensor, dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Values of `batch` at fractional `positions` [B, L_out] along `dim` (linear interpolation, edges held)."""
    length = batch.shape[dim]
    positions = positions.clamp(0, length - 1)
    low = positions.floor().long().clamp(max=length - 1)  # [B, L_out]
    high = (low + 1).clamp(max=length - 1)
    weight = positions - low  # [B, L_out]
    if dim == FREQ_DIM:
        gather = lambda index: batch.gather(FREQ_DIM, index[:, :, None].expand(-1, -1, batch.shape[TIME_DIM]))  # noqa: E731
        weight = weight[:, :, None]
    else:
        gather = lambda index: batch.gather(TIME_DIM, index[:, None, :].expand(-1, batch.shape[FREQ_DIM], -1))  # noqa: E731
        weight = weight[:, None, :]
    return gather(low) * (1 - weight) + gather(high) * weight


def pitch_shift(batch: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Move each sample up by `bins` [B] mel bins (fractional: interpolated; the edge band fills the gap).

    On the mel axis a shift is close to a change of key in the middle of the range (mel bins are near-logarithmic
    there); it is an approximation, cheap on the batch.
    """
    bands = torch.arange(batch.shape[FREQ_DIM], device=batch.device, dtype=torch.float32)  # [n_mels]
    return _resample(batch, FREQ_DIM, bands[None, :] - bins[:, None])


def time_stretch(batch: torch.Tensor, keep: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Resized time crops: the frames from `start` [B] (a share of the room left) spanning `keep` [B] (a share
    of the frames) are stretched to the whole length: a slower tempo, by 1 / keep."""
    frames = batch.shape[TIME_DIM]
    span = keep * (frames - 1)  # [B]
    first = start * (frames - 1 - span)  # [B]
    steps = torch.linspace(0, 1, frames, device=batch.device)  # [T]
    return _resample(batch, TIME_DIM, first[:, None] + steps[None, :] * span[:, None])


def mix_in(batch: torch.Tensor, other: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Mix `other` [B, n_mels, T] under `batch` in power: 10 log10((1 - share) 10^(x/10) + share 10^(y/10))."""
    share = share[:, None, None]
    top = torch.maximum(batch, other)  # factored out so the powers never overflow
    power = (1 - share) * 10 ** ((batch - top) / 10) + share * 10 ** ((other - top) / 10)
    return top + 10 * torch.log10(power)


def style_augment(batch: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Key, tempo and mixing changes, each on a random share of the samples; no draw at all when off."""
    size, device = batch.shape[0], batch.device
    view = batch
    if settings.pitch_p > 0:
        fires = _rand((size,), generator, device) < settings.pitch_p
        bins = _uniform(size, -settings.pitch_max_bins, settings.pitch_max_bins, generator, device)
        view = torch.where(fires[:, None, None], pitch_shift(view, bins), view)
    if settings.stretch_p > 0:
        fires = _rand((size,), generator, device) < settings.stretch_p
        keep = _uniform(size, 1 - settings.stretch_max, 1.0, generator, device)
        start = _rand((size,), generator, device)
        view = torch.where(fires[:, None, None], time_stretch(view, keep, start), view)
    if settings.mix_p > 0 and size > 1:
        fires = _rand((size,), generator, device) < settings.mix_p
        share = _uniform(size, 0.0, settings.mix_max, generator, device)
        view = torch.where(fires[:, None, None], mix_in(view, batch.roll(1, dims=0), share), view)  # the next track
    return view


def choose_kinds(
    batch_size: int,
    per_view: int,
    probabilities: tuple[float, ...],
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Which kinds each sample gets, `[B, kinds]` bool.

    Each sample draws `per_view` kinds uniformly without replacement (the lowest ranks of a random permutation);
    each drawn kind then fires with its own probability.
    """
    kinds = len(probabilities)
    ranks = _rand((batch_size, kinds), generator, device).argsort(dim=1).argsort(dim=1)  # [B, kinds]
    drawn = ranks < per_view
    chance = torch.tensor(probabilities, dtype=torch.float32, device=device)  # [kinds]
    fires = _rand((batch_size, kinds), generator, device) < chance  # [B, kinds]
    return drawn & fires


class Augmenter:
    """One random SimCLR view of a batch, as `AugmentSettings` describes."""

    def __init__(self, settings: AugmentSettings) -> None:
        self.settings = settings

    @property
    def probabilities(self) -> tuple[float, ...]:
        """Chance of each kind in `KINDS` once drawn."""
        settings = self.settings
        return (settings.gain_p, settings.noise_p, settings.reverse_p, settings.freq_mask_p, settings.time_mask_p)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """An augmented view of `batch` [B, n_mels, T]; each sample gets its own kinds and parameters."""
        batch = style_augment(batch, self.settings, generator)
        if self.settings.per_view == 0:
            return batch
        chosen = choose_kinds(batch.shape[0], self.settings.per_view, self.probabilities, generator, batch.device)
        view = batch
        # Every kind runs on the whole batch and is kept only where chosen: no per-sample loop, no device sync.
        for column, step in enumerate(self._steps(generator)):
            view = torch.where(chosen[:, column, None, None], step(view), view)
        return view

    def _steps(self, generator: torch.Generator) -> tuple[Callable[[torch.Tensor], torch.Tensor], ...]:
        """The augmentation of each kind in `KINDS`, bound to the settings and the generator."""
        settings = self.settings
        return (
            lambda x: gain_contrast(x, settings.gain_db, settings.contrast, generator),
            lambda x: add_noise(x, settings.noise_snr_db, generator),
            reverse_time,
            lambda x: freq_mask(x, settings.freq_mask_max, settings.freq_masks, generator),
            lambda x: time_mask(x, settings.time_mask_max, settings.time_masks, generator),
        )

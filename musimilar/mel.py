"""Waveform -> log-mel spectrogram in dB, the same code on CPU and GPU.

The dB scale is relative to a fixed reference power (1.0, a full-scale sine's band power is near 0 dB) with a fixed
floor (`amin`), never the clip's own maximum: the log-mel of a crop equals the crop of the track's log-mel, so crops
read from the cache and queries computed on the fly see the same numbers. Parameters follow librosa's defaults
(Slaney mel scale and normalisation, periodic Hann window, centred frames with zero padding) so values match
`librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, amin=amin, top_db=None)`.
"""

from __future__ import annotations

import hashlib
import json

import torch
import torchaudio

from musimilar.settings import AudioSettings, MelSettings

REFERENCE_POWER = 1.0


BLOCK_FRAMES = 2048  # long tracks are transformed ~47 s at a time: the spectrogram block stays in the CPU cache
BANDS_PER_GROUP = 16  # the mel product runs per group of neighbouring bands over the bins they cover


class LogMel(torch.nn.Module):
    """[..., samples] float32 waveform -> [..., n_mels, frames] log-mel in dB.

    The filterbank and window are torchaudio's `MelSpectrogram`'s; the power spectrum is computed as re² + im² of
    a centred, zero-padded STFT, block by block over time (identical to one whole-signal STFT, and faster). The
    filterbank is mostly zeros (each bin feeds at most two triangles), so the mel product runs per group of
    neighbouring bands over only the bins that group covers: the same sums, an eighth of the multiplications.
    """

    def __init__(self, audio: AudioSettings, mel: MelSettings) -> None:
        super().__init__()
        self.amin = mel.amin
        self.n_fft = mel.n_fft
        self.hop_length = mel.hop_length
        self.transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=audio.sample_rate,
            n_fft=mel.n_fft,
            win_length=mel.n_fft,
            hop_length=mel.hop_length,
            f_min=mel.f_min,
            f_max=mel.f_max,
            n_mels=mel.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )
        self.groups = band_groups(self.transform.mel_scale.fb, BANDS_PER_GROUP)
        for number, (first_bin, _, first_band, last_band) in enumerate(self.groups):
            weights = self.transform.mel_scale.fb[first_bin : self.groups[number][1], first_band:last_band]
            self.register_buffer(f"group_{number}", weights.T.contiguous(), persistent=False)  # [bands, bins]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = 1 + waveform.shape[-1] // self.hop_length
        padded = torch.nn.functional.pad(waveform, (self.n_fft // 2, self.n_fft // 2))  # centred frames
        blocks = [
            self._block(padded, start, min(start + BLOCK_FRAMES, frames)) for start in range(0, frames, BLOCK_FRAMES)
        ]
        power = torch.cat(blocks, dim=-1) if len(blocks) > 1 else blocks[0]  # [..., n_mels, frames]
        return 10.0 * torch.log10(torch.clamp(power, min=self.amin) / REFERENCE_POWER)

    def _block(self, padded: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Mel power of frames [first, last) of the padded waveform."""
        samples = padded[..., first * self.hop_length : (last - 1) * self.hop_length + self.n_fft]
        window = self.transform.spectrogram.window
        spectrum = torch.stft(
            samples, self.n_fft, self.hop_length, self.n_fft, window, center=False, return_complex=True
        )  # [..., n_fft // 2 + 1, last - first]
        power = torch.addcmul(spectrum.real * spectrum.real, spectrum.imag, spectrum.imag)  # re² + im²
        bands = [
            torch.matmul(getattr(self, f"group_{number}"), power[..., first_bin:last_bin, :])
            for number, (first_bin, last_bin, _, _) in enumerate(self.groups)
        ]
        return torch.cat(bands, dim=-2)  # [..., n_mels, last - first]


def band_groups(filterbank: torch.Tensor, size: int) -> list[tuple[int, int, int, int]]:
    """(first bin, last bin + 1, first band, last band + 1) of each run of `size` neighbouring mel bands: the bins
    outside a group's span have zero weight in all of its bands. A group that covers no bin keeps one (all zero)."""
    groups = []
    for first_band in range(0, filterbank.shape[1], size):
        last_band = min(first_band + size, filterbank.shape[1])
        used = torch.nonzero(filterbank[:, first_band:last_band].any(dim=1)).flatten()
        first_bin, last_bin = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
        groups.append((first_bin, last_bin, first_band, last_band))
    return groups


def preprocessing_fingerprint(audio: AudioSettings, mel: MelSettings) -> str:
    """Identifies everything that decides the numbers of a cached log-mel (a changed value invalidates the cache)."""
    from musimilar.audio import RESAMPLER

    fields = {
        "sample_rate": audio.sample_rate,
        "max_seconds": audio.max_seconds,
        "resampler": RESAMPLER,
        **mel.model_dump(),
    }
    return hashlib.blake2b(json.dumps(fields, sort_keys=True).encode(), digest_size=6).hexdigest()

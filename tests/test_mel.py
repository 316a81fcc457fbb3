from __future__ import annotations

import numpy as np
import pytest
import torch

from musimilar.frames import frames_per_second
from musimilar.mel import LogMel, preprocessing_fingerprint
from musimilar.settings import AudioSettings, MelSettings
from musimilar.synth import get_style, synthesise_clip

AUDIO = AudioSettings()
MEL = MelSettings()
LIBROSA_TOLERANCE_DB = 0.1
COMPARED_ABOVE_DB = -80.0  # below this float32 rounding in the FFT, not the transform, sets the difference
CROP_TOLERANCE_DB = 1e-3


def music(style: str = "techno", seconds: float = 5.0, seed: int = 1) -> np.ndarray:
    return synthesise_clip(get_style(style), seconds, AUDIO.sample_rate, np.random.default_rng(seed))


def logmel(samples: np.ndarray, mel: MelSettings = MEL) -> np.ndarray:
    with torch.inference_mode():
        return LogMel(AUDIO, mel)(torch.from_numpy(samples)).numpy()


@pytest.mark.parametrize("style", ["techno", "piano-ballad"])
def test_logmel_matches_librosa(style: str) -> None:
    librosa = pytest.importorskip("librosa")
    samples = music(style)
    power = librosa.feature.melspectrogram(
        y=samples,
        sr=AUDIO.sample_rate,
        n_fft=MEL.n_fft,
        hop_length=MEL.hop_length,
        n_mels=MEL.n_mels,
        fmin=MEL.f_min,
        fmax=MEL.f_max,
        power=2.0,
        center=True,
        pad_mode="constant",
    )
    expected = librosa.power_to_db(power, ref=1.0, amin=MEL.amin, top_db=None)

    ours = logmel(samples)

    assert ours.shape == expected.shape == (MEL.n_mels, centred_frames(len(samples)))
    compared = expected > COMPARED_ABOVE_DB
    difference = float(np.abs(ours - expected)[compared].max())
    print(f"{style}: max |LogMel - librosa| = {difference:.5f} dB over {compared.mean():.0%} of the bins")
    assert compared.mean() > 0.5
    assert difference < LIBROSA_TOLERANCE_DB, f"max abs difference {difference:.4f} dB"


def test_logmel_of_a_crop_is_the_crop_of_the_logmel() -> None:
    samples = music(seconds=6.0)
    whole = logmel(samples)  # [n_mels, T]
    hop = MEL.hop_length
    edge = MEL.n_fft // 2 // hop  # frames whose window reaches past the crop's ends differ (zero padding)
    for start, length in [(40, 100), (57, 64), (0, 80)]:
        crop = logmel(samples[start * hop : (start + length) * hop])
        assert crop.shape[1] == length + 1
        inner = slice(edge, length - edge + 1)
        difference = np.abs(crop[:, inner] - whole[:, start + edge : start + length - edge + 1]).max()
        assert difference < CROP_TOLERANCE_DB, (start, length, difference)


def test_logmel_does_not_depend_on_the_clip_level() -> None:
    """Fixed reference: halving the amplitude lowers every bin by 6.02 dB (no per-clip normalisation)."""
    samples = music()
    loud, quiet = logmel(samples), logmel(samples / 2)
    above_floor = loud > -60
    np.testing.assert_allclose((loud - quiet)[above_floor], 20 * np.log10(2), atol=1e-3)


def test_logmel_of_silence_is_the_floor() -> None:
    floor = 10 * np.log10(MEL.amin)
    np.testing.assert_allclose(logmel(np.zeros(AUDIO.sample_rate, dtype=np.float32)), floor, atol=1e-4)


def test_batches_equal_single_clips() -> None:
    batch = np.stack([music(seed=seed, seconds=2.0) for seed in range(3)])  # [B, samples]
    together = logmel(batch)  # [B, n_mels, T]
    assert together.shape == (3, MEL.n_mels, centred_frames(batch.shape[1]))
    for row, samples in enumerate(batch):
        np.testing.assert_allclose(together[row], logmel(samples), atol=1e-4)


@pytest.mark.parametrize("samples", [1, 511, 512, 513, 22050, 66150])
def test_frames_are_centred_one_per_hop(samples: int) -> None:
    waveform = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
    assert logmel(waveform).shape[1] == centred_frames(samples)


def centred_frames(samples: int) -> int:
    """Frames of a waveform of `samples` samples with centred frames: one at every hop, from sample 0."""
    return 1 + samples // MEL.hop_length


def test_frames_per_second() -> None:
    assert frames_per_second(AUDIO, MEL) == pytest.approx(22050 / 512)


@pytest.mark.parametrize(
    "change",
    [{"n_fft": 1024}, {"hop_length": 256}, {"n_mels": 64}, {"f_min": 20.0}, {"f_max": 8000.0}, {"amin": 1e-8}],
)
def test_preprocessing_fingerprint_changes_with_each_mel_setting(change: dict) -> None:
    before = preprocessing_fingerprint(AUDIO, MEL)
    assert preprocessing_fingerprint(AUDIO, MelSettings()) == before
    assert preprocessing_fingerprint(AUDIO, MelSettings(**change)) != before


def test_preprocessing_fingerprint_follows_what_changes_the_numbers() -> None:
    before = preprocessing_fingerprint(AUDIO, MEL)
    assert preprocessing_fingerprint(AudioSettings(sample_rate=16000), MEL) != before
    assert preprocessing_fingerprint(AudioSettings(max_seconds=60.0), MEL) != before
    assert preprocessing_fingerprint(AudioSettings(min_seconds=3.0), MEL) == before  # rejects, never changes


@pytest.mark.gpu
def test_logmel_on_gpu_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    samples = music()
    module = LogMel(AUDIO, MEL).to("cuda")
    with torch.inference_mode():
        on_gpu = module(torch.from_numpy(samples).to("cuda")).cpu().numpy()
    cpu = logmel(samples)
    compared = cpu > COMPARED_ABOVE_DB
    assert np.abs(on_gpu - cpu)[compared].max() < 0.01

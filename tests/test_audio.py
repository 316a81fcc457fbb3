from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from musimilar.audio import decode, decode_segments, kept_window, probe
from musimilar.errors import DecodeError
from musimilar.settings import AudioSettings

TARGET_RATE = AudioSettings().sample_rate
FIXTURE_SECONDS = 3.0  # every file of the `audio_files` fixture
STEP_HZ = (300.0, 600.0, 1200.0)  # the tone of each 2 s third of the step signal
STEP_SECONDS = 2.0


def dominant_hz(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def step_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s at 44.1 kHz stereo: 300 Hz, then 600 Hz, then 1200 Hz, 2 s each; where a part came from is audible."""
    rate = 44100
    t = np.arange(int(STEP_SECONDS * rate)) / rate
    mono = np.concatenate([0.5 * np.sin(2 * np.pi * hz * t) for hz in STEP_HZ]).astype(np.float32)
    path = tmp_path_factory.mktemp("step") / "step.wav"
    soundfile.write(path, np.stack([mono, mono], axis=1), rate, subtype="FLOAT")
    return path


@pytest.mark.parametrize(
    "name", ["wav_stereo_44100", "flac_mono_22050", "ogg_stereo_48000", "mp3_mono_44100", "wav_mono_8000"]
)
def test_decode_gives_mono_float32_at_the_target_rate(audio_files: dict[str, Path], name: str) -> None:
    _, channels, rate = name.split("_")
    samples, info = decode(audio_files[name], AudioSettings())

    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - FIXTURE_SECONDS * TARGET_RATE) <= 1
    assert info.sample_rate == int(rate)
    assert info.channels == (2 if channels == "stereo" else 1)
    assert info.duration == pytest.approx(FIXTURE_SECONDS, abs=0.01)
    assert np.all(np.isfinite(samples))
    assert 0.02 < float(np.sqrt(np.mean(samples**2))) and float(np.abs(samples).max()) < 1.2


def test_decode_matches_librosa_load(audio_files: dict[str, Path]) -> None:
    """The downmix and resampling agree with what librosa.load gives (a different resampler, so correlation)."""
    librosa = pytest.importorskip("librosa")
    path = audio_files["wav_stereo_44100"]
    samples, _ = decode(path, AudioSettings())
    reference, _ = librosa.load(path, sr=TARGET_RATE, mono=True)
    size = min(len(samples), len(reference))
    assert np.corrcoef(samples[:size], reference[:size])[0, 1] > 0.99


def test_decode_at_the_native_rate_is_the_file_itself(audio_files: dict[str, Path]) -> None:
    path = audio_files["flac_mono_22050"]
    samples, _ = decode(path, AudioSettings())
    expected, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize("channels", [2, 3])
def test_downmix_is_the_mean_of_the_channels(tmp_path: Path, channels: int) -> None:
    rate = 44100
    samples = np.random.default_rng(channels).uniform(-0.5, 0.5, size=(2 * rate, channels)).astype(np.float32)
    path = tmp_path / "many.wav"
    soundfile.write(path, samples, rate, subtype="FLOAT")

    mono, info = decode(path, AudioSettings(sample_rate=rate))  # no resampling: the downmix alone

    assert info.channels == channels
    np.testing.assert_allclose(mono, samples.mean(axis=1), rtol=0, atol=1e-7)
    if channels == 2:
        np.testing.assert_array_equal(mono, samples.mean(axis=1))


def test_kept_window_is_the_middle() -> None:
    assert kept_window(100.0, 600.0) == (0.0, 100.0)
    assert kept_window(700.0, 600.0) == (50.0, 600.0)


def test_max_seconds_keeps_the_middle_part(step_file: Path) -> None:
    samples, info = decode(step_file, AudioSettings(max_seconds=4.0))  # keeps 1 s .. 5 s of 6 s

    assert info.duration == pytest.approx(6.0)
    assert abs(len(samples) - 4.0 * TARGET_RATE) <= 1

    def hz(start: float, end: float) -> float:
        return dominant_hz(samples[int(start * TARGET_RATE) : int(end * TARGET_RATE)], TARGET_RATE)

    assert hz(0.1, 0.9) == pytest.approx(STEP_HZ[0], abs=5)  # 1.1 s .. 1.9 s of the file
    assert hz(1.1, 2.9) == pytest.approx(STEP_HZ[1], abs=5)
    assert hz(3.1, 3.9) == pytest.approx(STEP_HZ[2], abs=5)  # 4.1 s .. 4.9 s


def test_max_seconds_shorter_keeps_only_the_middle_tone(step_file: Path) -> None:
    samples, _ = decode(step_file, AudioSettings(max_seconds=1.5))
    assert abs(len(samples) - 1.5 * TARGET_RATE) <= 1
    assert dominant_hz(samples, TARGET_RATE) == pytest.approx(STEP_HZ[1], abs=5)


def test_decode_segments_reads_parts_of_the_kept_window(step_file: Path) -> None:
    settings = AudioSettings(max_seconds=4.0)
    segments = decode_segments(step_file, settings, [0.0, 1.5, 3.5, 10.0], 0.4)

    assert [abs(len(s) - 0.4 * TARGET_RATE) <= 1 for s in segments] == [True] * 4
    assert all(s.dtype == np.float32 for s in segments)
    # starts are seconds into the kept part (which starts 1 s into the file); a start too late is moved back
    hz = [dominant_hz(s, TARGET_RATE) for s in segments]
    assert hz == pytest.approx([STEP_HZ[0], STEP_HZ[1], STEP_HZ[2], STEP_HZ[2]], abs=30)


def test_decode_segments_equal_slices_of_the_whole_decode(audio_files: dict[str, Path]) -> None:
    path = audio_files["flac_mono_22050"]  # native rate: no resampling at the segment edges
    whole, _ = decode(path, AudioSettings())
    first, second = decode_segments(path, AudioSettings(), [0.5, 1.25], 1.0)
    np.testing.assert_array_equal(first, whole[TARGET_RATE // 2 : TARGET_RATE // 2 + TARGET_RATE])
    start = int(1.25 * TARGET_RATE)
    np.testing.assert_array_equal(second, whole[start : start + TARGET_RATE])


def test_decode_segments_longer_than_the_track(audio_files: dict[str, Path]) -> None:
    (segment,) = decode_segments(audio_files["flac_mono_22050"], AudioSettings(), [1.0], 10.0)
    assert abs(len(segment) - FIXTURE_SECONDS * TARGET_RATE) <= 1


def test_probe_reads_the_header(audio_files: dict[str, Path]) -> None:
    info = probe(audio_files["ogg_stereo_48000"])
    assert (info.sample_rate, info.channels) == (48000, 2)
    assert info.duration == pytest.approx(FIXTURE_SECONDS, abs=0.01)


def decode_error(path: Path, settings: AudioSettings | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(path, settings or AudioSettings())
    message = str(caught.value)
    assert message.startswith(f"{path}: {caught.value.kind}: "), message
    assert "\n" not in message
    return caught.value


def test_zero_byte_file_is_empty(bad_files: dict[str, Path]) -> None:
    assert decode_error(bad_files["empty_wav"]).kind == "empty"


def test_text_named_mp3_is_not_audio(bad_files: dict[str, Path]) -> None:
    error = decode_error(bad_files["text_mp3"])
    assert error.kind in ("unsupported", "unreadable")
    assert "does not exist" not in error.cause  # libsndfile's words for it would mislead


def test_truncated_mp3_is_truncated(bad_files: dict[str, Path]) -> None:
    error = decode_error(bad_files["truncated_mp3"])
    assert error.kind == "truncated"
    assert "decoded" in error.cause


def test_missing_file(tmp_path: Path) -> None:
    assert decode_error(tmp_path / "absent.ogg").kind == "missing"
    with pytest.raises(DecodeError, match="missing"):
        decode_segments(tmp_path / "absent.ogg", AudioSettings(), [0.0], 1.0)


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    soundfile.write(path, np.full(4410, 0.1, dtype=np.float32), 44100)  # 0.1 s
    error = decode_error(path, AudioSettings(min_seconds=0.5))
    assert error.kind == "too short"
    assert "0.10 s" in error.cause
    with pytest.raises(DecodeError, match="too short"):
        decode_segments(path, AudioSettings(min_seconds=0.5), [0.0], 1.0)
    samples, _ = decode(path, AudioSettings(min_seconds=0.05))
    assert abs(len(samples) - 0.1 * TARGET_RATE) <= 1


def test_folder_is_not_audio(tmp_path: Path) -> None:
    folder = tmp_path / "album.mp3"
    folder.mkdir()
    assert decode_error(folder).kind in ("unsupported", "unreadable")

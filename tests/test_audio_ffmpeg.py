"""The FFmpeg reader behind musimilar.audio, on real files encoded with PyAV's own encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from musimilar.audio import decode, decode_segments, probe
from musimilar.errors import DecodeError
from musimilar.settings import AudioSettings
from musimilar.synth import write_audio

TARGET_RATE = AudioSettings().sample_rate
STEP_HZ = (300.0, 600.0, 1200.0)  # the tone of each 2 s third of the step signal
ENCODED = ["m4a", "alac.m4a", "aac", "wma", "webm", "mka", "opus.mka", "wv"]


def dominant_hz(samples: np.ndarray, sample_rate: int = TARGET_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[np.argmax(spectrum)])


def step_signal(rate: int = 44100) -> np.ndarray:
    """6 s stereo: 300 Hz, then 600 Hz, then 1200 Hz, 2 s each; where a decoded part came from is audible."""
    t = np.arange(2 * rate) / rate
    mono = np.concatenate([0.5 * np.sin(2 * np.pi * hz * t) for hz in STEP_HZ]).astype(np.float32)
    return np.stack([mono, mono], axis=1)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("encoded")
    paths = {name: directory / f"step.{name}" for name in ENCODED}
    for path in paths.values():
        write_audio(path, step_signal(), 44100)
    return paths


@pytest.mark.parametrize("name", ENCODED)
def test_ffmpeg_formats_decode_to_the_kept_middle(encoded: dict[str, Path], name: str) -> None:
    samples, info = decode(encoded[name], AudioSettings(max_seconds=4.0))  # keeps 1 s .. 5 s of 6 s

    assert info.decoder == "ffmpeg" and info.channels == 2
    assert info.duration == pytest.approx(6.0, abs=0.07)  # containers round or pad a little
    assert samples.dtype == np.float32 and abs(len(samples) - 4.0 * TARGET_RATE) <= 2
    parts = [samples[int(a * TARGET_RATE) : int(b * TARGET_RATE)] for a, b in ((0.1, 0.9), (1.1, 2.9), (3.1, 3.9))]
    assert [dominant_hz(part) for part in parts] == pytest.approx(STEP_HZ, abs=5)


@pytest.mark.parametrize("name", ["m4a", "webm", "wma"])
def test_ffmpeg_segments_seek_to_their_place(encoded: dict[str, Path], name: str) -> None:
    segments = decode_segments(encoded[name], AudioSettings(max_seconds=4.0), [3.5, 0.0, 1.5], 0.4)
    assert [abs(len(s) - 0.4 * TARGET_RATE) <= 1 for s in segments] == [True] * 3
    assert [dominant_hz(s) for s in segments] == pytest.approx([STEP_HZ[2], STEP_HZ[0], STEP_HZ[1]], abs=30)


def test_both_readers_agree_on_a_lossless_file(tmp_path: Path) -> None:
    path = tmp_path / "step.flac"
    soundfile.write(path, step_signal(22050), 22050, subtype="PCM_16")
    by_sndfile, sndfile_info = decode(path, AudioSettings(), decoder="libsndfile")
    by_ffmpeg, ffmpeg_info = decode(path, AudioSettings(), decoder="ffmpeg")
    assert (sndfile_info.decoder, ffmpeg_info.decoder) == ("libsndfile", "ffmpeg")
    np.testing.assert_allclose(by_ffmpeg, by_sndfile, atol=1e-6)
    far_in = decode_segments(path, AudioSettings(), [4.25], 1.0)[0]
    np.testing.assert_allclose(far_in, by_sndfile[int(4.25 * 22050) : int(5.25 * 22050)], atol=1e-6)


def test_ffmpeg_reads_what_libsndfile_does_not_recognise(tmp_path: Path, encoded: dict[str, Path]) -> None:
    misnamed = tmp_path / "really-aac.wav"
    misnamed.write_bytes(encoded["m4a"].read_bytes())
    samples, info = decode(misnamed, AudioSettings())
    assert info.decoder == "ffmpeg" and abs(len(samples) - 6.0 * TARGET_RATE) < 0.05 * TARGET_RATE


def decode_error(path: Path) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(path, AudioSettings())
    message = str(caught.value)
    assert message.startswith(f"{path}: {caught.value.kind}: ") and "\n" not in message, message
    return caught.value


def test_ffmpeg_bad_files_are_typed(tmp_path: Path, encoded: dict[str, Path]) -> None:
    text = tmp_path / "notes.m4a"
    text.write_text("not audio\n")
    empty = tmp_path / "empty.wma"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.webm"
    cut.write_bytes(encoded["webm"].read_bytes()[: encoded["webm"].stat().st_size // 3])
    cut_m4a = tmp_path / "cut.m4a"  # the index (moov) comes last: nothing to decode from
    cut_m4a.write_bytes(encoded["m4a"].read_bytes()[: encoded["m4a"].stat().st_size // 3])
    cut_wavpack = tmp_path / "cut.wv"  # its header announces the length
    cut_wavpack.write_bytes(encoded["wv"].read_bytes()[: encoded["wv"].stat().st_size // 3])

    assert decode_error(text).kind == "unsupported"
    assert decode_error(empty).kind == "empty"
    assert decode_error(cut).kind in ("truncated", "unreadable")
    assert decode_error(cut_m4a).kind in ("unsupported", "unreadable")
    assert decode_error(cut_wavpack).kind == "truncated"
    assert decode_error(tmp_path / "absent.m4a").kind == "missing"


def test_too_short_through_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "blip.m4a"
    write_audio(path, np.full(4410, 0.1, dtype=np.float32), 44100)
    with pytest.raises(DecodeError, match="too short"):
        decode(path, AudioSettings(min_seconds=0.5))


@pytest.mark.parametrize("name", ["silence.wav", "silence.m4a", "hiss.flac"])
def test_silence_is_recorded_as_silent(tmp_path: Path, name: str) -> None:
    rate = 22050
    samples = np.zeros(3 * rate, dtype=np.float32)
    if name.startswith("hiss"):  # near-silence: noise at -80 dBFS
        samples = np.random.default_rng(0).normal(0, 1e-4, 3 * rate).astype(np.float32)
    write_audio(tmp_path / name, samples, rate)
    error = decode_error(tmp_path / name)
    assert error.kind == "silent"
    assert ("digital silence" in error.cause) == name.startswith("silence")


def test_quiet_music_is_not_silence(tmp_path: Path) -> None:
    path = tmp_path / "quiet.flac"
    write_audio(path, step_signal(22050) * 0.002, 22050)  # about -57 dBFS RMS: pianissimo, not silence
    samples, _ = decode(path, AudioSettings())
    assert dominant_hz(samples[:TARGET_RATE]) == pytest.approx(STEP_HZ[0], abs=5)


def test_probe_names_the_decoder(encoded: dict[str, Path]) -> None:
    assert probe(encoded["wma"]).decoder == "ffmpeg"

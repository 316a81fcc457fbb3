from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from musimilar.synth import PEAK, get_style, style_names, synthesise_clip, write_library

FEATURE_RATE = 16000  # Hz; enough for the features below and quick to synthesise
ONSET_FLUX = 1.0  # mean rise of log power over all bins (nepers) that counts as an onset


def clip(style: str, seed: int = 0, seconds: float = 4.0, sample_rate: int = 16000, stereo: bool = False):
    return synthesise_clip(get_style(style), seconds, sample_rate, np.random.default_rng(seed), stereo=stereo)


def centroid_and_onset_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """[log spectral centroid (log Hz), onsets per second]: two numbers a listener would tell styles apart by."""
    frame, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop] * np.hanning(frame)  # [T, frame]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [T, F]
    centroid = (power @ np.fft.rfftfreq(frame, 1 / sample_rate)).sum() / power.sum()
    flux = np.maximum(np.diff(np.log(power + 1e-6), axis=0), 0).mean(axis=1)  # [T - 1]
    middle = flux[1:-1]
    onsets = (middle > flux[:-2]) & (middle >= flux[2:]) & (middle > ONSET_FLUX)
    return np.array([np.log(centroid), onsets.sum() / (len(samples) / sample_rate)])


@pytest.fixture(scope="module")
def style_features() -> dict[str, np.ndarray]:
    """Features of 4 clips of 6 s per style: {style: [4, 2]}."""
    return {
        name: np.stack(
            [centroid_and_onset_rate(clip(name, seed, 6.0, FEATURE_RATE), FEATURE_RATE) for seed in range(4)]
        )
        for name in style_names()
    }


def test_there_are_enough_distinct_styles():
    names = style_names()
    assert len(names) >= 6 and len(set(names)) == len(names)
    assert all(name == name.lower() and " " not in name for name in names)  # names double as folder names


def test_unknown_style_names_the_known_ones():
    with pytest.raises(ValueError, match="techno"):
        get_style("polka")


def test_same_seed_gives_the_same_clip_and_another_seed_another():
    assert np.array_equal(clip("techno", seed=3), clip("techno", seed=3))
    assert not np.array_equal(clip("techno", seed=3), clip("techno", seed=4))


@pytest.mark.parametrize("style", style_names())
def test_clip_is_float32_of_the_asked_length_at_a_fixed_peak(style):
    samples = clip(style, seconds=2.5, sample_rate=8000)
    assert samples.dtype == np.float32 and samples.shape == (20000,)
    assert np.abs(samples).max() == pytest.approx(PEAK, abs=1e-6)
    assert np.sqrt(np.mean(samples**2)) > 0.03  # music throughout, not one blip


def test_stereo_channels_differ_slightly_and_mix_down_to_the_mono_clip():
    stereo, mono = clip("lofi-hiphop", seed=1, stereo=True), clip("lofi-hiphop", seed=1)
    assert stereo.shape == (len(mono), 2) and stereo.dtype == np.float32
    left, right = stereo.T
    assert not np.allclose(left, right, atol=1e-3)
    assert np.corrcoef(left, right)[0, 1] > 0.5
    assert np.corrcoef(stereo.mean(axis=1), mono)[0, 1] > 0.9999


@pytest.mark.parametrize("style", ["piano-ballad", "drum-and-bass", "string-pad"])
def test_clips_of_one_style_are_different_music(style):
    first, second = clip(style, seed=0), clip(style, seed=1)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.3


def test_styles_differ_in_rhythm_and_brightness(style_features):
    median = {name: np.median(features, axis=0) for name, features in style_features.items()}
    assert median["string-pad"][1] < 0.5 < median["piano-ballad"][1]  # a pad has no onsets
    assert median["drum-and-bass"][1] > 2 * median["folk-guitar"][1]
    assert median["folk-guitar"][0] > median["piano-ballad"][0] + 1  # bright plucked strings, dark piano


def test_style_is_recognisable_from_two_simple_features(style_features):
    """Leave-one-out nearest neighbour on [centroid, onset rate] finds the style of most clips, not all."""
    names = list(style_features)
    points = np.concatenate([style_features[name] for name in names])  # [styles * 4, 2]
    labels = np.repeat(np.arange(len(names)), 4)
    points = (points - points.mean(axis=0)) / points.std(axis=0)
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    accuracy = np.mean(labels[distances.argmin(axis=1)] == labels)
    assert accuracy >= 0.8


def test_library_layout_labels_and_formats(synth_library):
    directory, tracks = synth_library
    assert len(tracks) == 4 * 6
    assert sorted({track.style for track in tracks}) == sorted(style_names()[:4])
    for index, track in enumerate(tracks):
        assert track.path.parent == directory / track.style  # the folder is the label
        assert track.path.name == f"{track.style}-{index % 6 + 1:02d}{track.path.suffix}"
        assert track.path.suffix == [".wav", ".flac", ".ogg", ".mp3"][index % 6 % 4]
    assert sorted(path for path in directory.rglob("*") if path.is_file()) == sorted(t.path for t in tracks)


def test_every_format_decodes_with_its_rate_and_duration(synth_library):
    _, tracks = synth_library
    for track in tracks:
        samples, rate = soundfile.read(track.path)
        assert rate == 22050 and samples.ndim == 1, track.path
        assert len(samples) / rate == pytest.approx(8.0, abs=0.1), track.path


def test_library_is_deterministic_and_each_clip_independent_of_the_others(tmp_path):
    first = write_library(tmp_path / "a", styles=2, per_style=2, seconds=1.0, sample_rate=8000, seed=5)
    second = write_library(tmp_path / "b", styles=2, per_style=2, seconds=1.0, sample_rate=8000, seed=5)
    alone = write_library(tmp_path / "c", styles=[style_names()[1]], per_style=1, seconds=1.0, sample_rate=8000, seed=5)
    other = write_library(tmp_path / "d", styles=1, per_style=1, seconds=1.0, sample_rate=8000, seed=6)
    assert [t.path.read_bytes() for t in first] == [t.path.read_bytes() for t in second]
    assert alone[0].path.read_bytes() == first[2].path.read_bytes()
    assert other[0].path.read_bytes() != first[0].path.read_bytes()


def test_stereo_library_and_progress(tmp_path):
    calls = []
    tracks = write_library(
        tmp_path,
        styles=1,
        per_style=2,
        seconds=1.0,
        formats=("flac",),
        stereo=True,
        progress=lambda *c: calls.append(c),
    )
    assert calls == [(1, 2), (2, 2)]
    assert all(soundfile.info(track.path).channels == 2 for track in tracks)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"styles": ["polka"]}, "unknown style"), ({"styles": 0}, "between 1"), ({"formats": ("xyz",)}, "cannot write")],
)
def test_library_rejects_bad_requests_before_writing(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        write_library(tmp_path / "library", **arguments)
    assert not (tmp_path / "library").exists()


@pytest.mark.parametrize(
    "name", ["wav_stereo_44100", "flac_mono_22050", "ogg_stereo_48000", "mp3_mono_44100", "wav_mono_8000"]
)
def test_format_fixture_is_what_its_name_says(audio_files, name):
    extension, channels, rate = name.split("_")
    path = audio_files[name]
    info = soundfile.info(path)
    assert path.suffix == f".{extension}" and info.format == {"ogg": "OGG", "mp3": "MP3"}.get(extension, info.format)
    assert info.samplerate == int(rate) and info.channels == {"mono": 1, "stereo": 2}[channels]
    samples, _ = soundfile.read(path)
    assert len(samples) / int(rate) == pytest.approx(3.0, abs=0.1)


def test_bad_files_are_bad_in_the_way_they_claim(bad_files):
    source, truncated = bad_files["truncated_mp3_source"], bad_files["truncated_mp3"]
    assert source.parent != bad_files["directory"]
    assert truncated.stat().st_size < 0.35 * source.stat().st_size
    assert truncated.read_bytes() == source.read_bytes()[: truncated.stat().st_size]
    assert bad_files["empty_wav"].stat().st_size == 0
    assert bad_files["text_mp3"].read_text(encoding="utf-8").startswith("This is a text file")
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(bad_files["text_mp3"])
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(bad_files["empty_wav"])


def test_good_file_at_an_awkward_path_decodes(bad_files):
    path: Path = bad_files["unicode_flac"]
    assert " " in str(path.parent.name) and not path.name.isascii()
    assert path.parent.parent == bad_files["directory"]
    samples, rate = soundfile.read(path)
    assert rate == 22050 and samples.shape == (3 * 22050, 2)

"""Shared fixtures: every audio file the tests use is synthesised here, once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musimilar.synth import SynthTrack, get_style, synthesise_clip, write_audio, write_library

MARKERS = {
    "slow": "takes more than a few seconds (deselect with -m 'not slow')",
    "gpu": "needs a CUDA device",
}

# name -> (style, seconds, sample rate, stereo); the name says what a format test gets.
AUDIO_FILES = {
    "wav_stereo_44100": ("techno", 3.0, 44100, True),
    "flac_mono_22050": ("piano-ballad", 3.0, 22050, False),
    "ogg_stereo_48000": ("string-pad", 3.0, 48000, True),
    "mp3_mono_44100": ("chiptune", 3.0, 44100, False),
    "wav_mono_8000": ("folk-guitar", 3.0, 8000, False),
}
TRUNCATED_FRACTION = 0.3  # of the bytes of a good mp3


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers unless the project's configuration already does, so the suite runs either way."""
    declared = {line.split(":")[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {description}")


def _write_clip(path: Path, style: str, seconds: float, sample_rate: int, stereo: bool, seed: int) -> Path:
    clip = synthesise_clip(get_style(style), seconds, sample_rate, np.random.default_rng(seed), stereo=stereo)
    write_audio(path, clip, sample_rate)
    return path


@pytest.fixture(scope="session")
def synth_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SynthTrack]]:
    """4 styles x 6 clips of 8 s at 22050 Hz, formats rotating over wav, flac, ogg and mp3."""
    directory = tmp_path_factory.mktemp("library")
    tracks = write_library(
        directory, styles=4, per_style=6, seconds=8.0, sample_rate=22050, formats=("wav", "flac", "ogg", "mp3")
    )
    return directory, tracks


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short file per format test, named `<format>_<mono|stereo>_<sample rate>`."""
    directory = tmp_path_factory.mktemp("formats")
    return {
        name: _write_clip(directory / f"{name}.{name.split('_')[0]}", style, seconds, rate, stereo, seed)
        for seed, (name, (style, seconds, rate, stereo)) in enumerate(AUDIO_FILES.items())
    }


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of files a scan must survive, and one good file at an awkward path.

    Keys: "directory" (the folder), "truncated_mp3" (the first 30 % of the bytes of "truncated_mp3_source", which
    lies outside the folder), "empty_wav" (zero bytes), "text_mp3" (text named x.mp3) and "unicode_flac" (a good
    clip in "dir with spaces/").
    """
    source = _write_clip(tmp_path_factory.mktemp("source") / "whole.mp3", "techno", 4.0, 44100, False, seed=10)
    directory = tmp_path_factory.mktemp("bad")
    whole = source.read_bytes()
    paths = {
        "directory": directory,
        "truncated_mp3_source": source,
        "truncated_mp3": directory / "truncated.mp3",
        "empty_wav": directory / "empty.wav",
        "text_mp3": directory / "x.mp3",
        "unicode_flac": directory / "dir with spaces" / "Ünïcødé sóng.flac",
    }
    paths["truncated_mp3"].write_bytes(whole[: int(len(whole) * TRUNCATED_FRACTION)])
    paths["empty_wav"].write_bytes(b"")
    paths["text_mp3"].write_text("This is a text file, not an mp3.\n", encoding="utf-8")
    _write_clip(paths["unicode_flac"], "folk-guitar", 3.0, 22050, True, seed=11)
    return paths


# A short CPU training on clearly distinct styles: enough for neighbours to follow the style. Embedding crops of
# 4 s, whatever the default, let a 10 s clip give segment retrieval two non-overlapping crops.
TRAINED_LIBRARY = {"styles": 4, "per_style": 8, "seconds": 10.0, "sample_rate": 22050}
TRAINED_SETTINGS = {
    "train.epochs": 4,
    "train.batch_size": 16,
    "train.crops_per_track": 4,
    "train.val_fraction": 0.0,
    "train.device": "cpu",
    "train.loader_workers": 1,
    "model.size": "small",
    "embed.crops": 4,
    "embed.crop_seconds": 4.0,
    "embed.device": "cpu",
}


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory):
    """(home, library folder, tracks): 4 styles x 8 clips of 10 s, converted, trained, embedded and indexed.

    Each track's folder is its style, so the "folder" label is the truth. Tests share it: copy the home's folder
    (shutil.copytree) before changing anything in it.
    """
    from musimilar.convert import convert
    from musimilar.embed import embed_library
    from musimilar.home import Home
    from musimilar.indexing import index_home
    from musimilar.settings import load_settings
    from musimilar.train import train

    library = tmp_path_factory.mktemp("trained-library")
    tracks = write_library(library, **TRAINED_LIBRARY)
    home = Home.open(tmp_path_factory.mktemp("trained-home"))
    settings = load_settings(flags=TRAINED_SETTINGS, environ={})
    convert(home, [library], settings, workers=2)
    train(home, settings)
    embed_library(home, device_name="cpu")
    index_home(home, settings.index)  # the index and the neighbour lists, as `musimilar index` builds them
    return home, library, tracks

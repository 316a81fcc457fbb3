"""Frame arithmetic of the log-mel (no torch): frames per second and crop lengths, shared by training and queries."""

from __future__ import annotations

from musimilar.settings import AudioSettings, MelSettings

MIN_CROP_FRAMES = 16  # the shortest crop, whatever the settings (0.37 s at the default rate and hop)


def frames_per_second(audio: AudioSettings, mel: MelSettings) -> float:
    return audio.sample_rate / mel.hop_length


def crop_frames(seconds: float, audio: AudioSettings, mel: MelSettings) -> int:
    """Frames in a crop of `seconds` (for training views and for embedding crops alike)."""
    return max(MIN_CROP_FRAMES, round(seconds * frames_per_second(audio, mel)))

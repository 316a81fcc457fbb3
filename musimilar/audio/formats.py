"""Which files are audio, and which decoder reads each: libsndfile where it reads the format and is faster,
FFmpeg (through PyAV) for everything else."""

from __future__ import annotations

from pathlib import Path

# libsndfile reads these itself and faster than FFmpeg (bench/convert.py --decoders: 1.2x to 6x faster)
SNDFILE_EXTENSIONS = frozenset(
    {".ogg", ".oga", ".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc", ".w64", ".caf", ".mp3"}
)
# what only FFmpeg reads (iTunes AAC/ALAC, WMA, web rips, lossless archives), and Opus, which libsndfile reads too
# but FFmpeg decodes in 0.6 of the time
FFMPEG_EXTENSIONS = frozenset(
    {
        ".opus", ".m4a", ".m4b", ".mp4", ".aac", ".adts", ".alac", ".wma", ".asf", ".webm", ".mka", ".ape", ".wv",
        ".tta", ".mpc", ".ac3", ".eac3", ".dts", ".amr", ".au", ".mp2", ".3gp", ".dsf", ".dff",
    }
)  # fmt: skip
AUDIO_EXTENSIONS = SNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def prefers_sndfile(path: Path) -> bool:
    """Whether libsndfile is tried first (FFmpeg still reads the file when libsndfile does not recognise it)."""
    return path.suffix.lower() in SNDFILE_EXTENSIONS

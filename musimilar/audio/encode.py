"""Write audio in the formats only FFmpeg reads (AAC/ALAC in m4a, WMA, Opus/Vorbis in WebM or Matroska, ...) with
the encoders PyAV's wheels carry: the tests and benchmarks make real encoded files with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# name -> (container format, codec, sample rate the codec needs or None for the input's)
ENCODINGS = {
    "m4a": ("ipod", "aac", None),
    "alac.m4a": ("ipod", "alac", None),
    "aac": ("adts", "aac", None),
    "wma": ("asf", "wmav2", None),
    "webm": ("webm", "libopus", 48000),
    "opus": ("ogg", "libopus", 48000),
    "opus.mka": ("matroska", "libopus", 48000),
    "mka": ("matroska", "vorbis", None),
    "wv": ("wv", "wavpack", None),
}
BLOCK_FRAMES = 4096
BIT_RATE = 128_000  # WMA's encoder has no default bit rate


def encoding_of(path: Path) -> str | None:
    """The ENCODINGS key for a file name (the longest matching suffix), or None."""
    name = path.name.lower()
    matches = [key for key in ENCODINGS if name.endswith("." + key)]
    return max(matches, key=len) if matches else None


def write_encoded(path: Path, samples: np.ndarray, sample_rate: int, encoding: str | None = None) -> None:
    """Encode samples ([n] or [n, channels], float in -1..1) into `path`; the name (or `encoding`) picks the codec."""
    import av

    key = encoding or encoding_of(path)
    if key not in ENCODINGS:
        raise ValueError(f"cannot encode {path.name}: choose one of {', '.join(ENCODINGS)}")
    container_format, codec, codec_rate = ENCODINGS[key]
    planar = np.ascontiguousarray(np.atleast_2d(samples.T if samples.ndim == 2 else samples), dtype=np.float32)
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=codec_rate or sample_rate, options={"strict": "experimental"})
        stream.layout = layout
        stream.bit_rate = BIT_RATE
        for start in range(0, planar.shape[1], BLOCK_FRAMES):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + BLOCK_FRAMES]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

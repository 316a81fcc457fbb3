"""The audio of a query file's embedding crops, decoded without torch.

The crops are those a library track's embedding takes from its cached log-mel (same starts, same frames), each
decoded with a little audio on either side so its log-mel equals the whole track's there: a file embeds the same
whether it is in the library or asked about from outside. Nothing here needs torch, so a cold query can decode
while the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musimilar.audio import decode_segments, kept_window, probe
from musimilar.frames import crop_frames
from musimilar.settings import AudioSettings, EmbedSettings, MelSettings

CONTEXT_FRAMES = 2  # hops decoded beyond what a crop's frames need: the resampler's edge stays outside the crop


@dataclass(frozen=True)
class CropGroup:
    """Segments of one decoded length: their log-mels are computed as one batch."""

    segments: np.ndarray  # [G, samples] at the model's rate
    leads: list[int]  # frames of context before each crop starts


def crop_starts(frames: int, crops: int, length: int) -> list[int]:
    """`crops` starts spread evenly so the crops cover the track from its first to its last frame."""
    room = max(frames - length, 0)
    return sorted({round(room * i / max(1, crops - 1)) for i in range(crops)}) if crops > 1 else [room // 2]


def decode_query_crops(path: Path, audio: AudioSettings, mel: MelSettings, embed: EmbedSettings) -> list[CropGroup]:
    """The audio of each embedding crop of `path` with its context, grouped by length (one decode per group)."""
    hop, rate = mel.hop_length, audio.sample_rate
    _, kept = kept_window(probe(path).duration, audio.max_seconds)
    samples = round(kept * rate)  # of the kept part, at the model's rate, as the cache holds it
    length = crop_frames(embed.crop_seconds, audio, mel)
    context = math.ceil(mel.n_fft / 2 / hop) + CONTEXT_FRAMES
    spans = []  # (first frame decoded, frames decoded, crop start within them)
    for start in crop_starts(1 + samples // hop, embed.crops, length):
        lead = min(start, context)
        first = start - lead
        spans.append((first, min(lead + length + context, -(-(samples - first * hop) // hop)), lead))
    groups = []
    for frames in sorted({frames for _, frames, _ in spans}):
        group = [(first, lead) for first, count, lead in spans if count == frames]
        seconds = min(frames * hop, samples - group[0][0] * hop) / rate
        segments = decode_segments(path, audio, [first * hop / rate for first, _ in group], seconds)
        groups.append(CropGroup(np.stack(_same_length(segments)), [lead for _, lead in group]))
    return groups


def _same_length(segments: list[np.ndarray]) -> list[np.ndarray]:
    """Segments cut to the shortest (a decoder may return a sample more or less of the same span)."""
    shortest = min(len(segment) for segment in segments)
    return [segment[:shortest] for segment in segments]

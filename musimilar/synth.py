"""Synthetic music: a library of short clips in a few clearly distinct styles, for tests and the demo.

A `Style` is a set of musical parameters: the timbre of its instruments, a tempo range, scale, register, melody
grid, chords, bass line, drum patterns and room. Each clip draws its own tempo, key, chord progression, melody,
mix, panning and small timbre changes from a seeded generator, so clips of one style sound related but never
alike. Only numpy: every pitch is rendered once per clip and reused, so a 20 s clip takes a few tens of ms.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile

PEAK = 0.9  # peak of every clip: headroom so lossy encoders do not clip
TABLE_SIZE = 2048  # samples in one period of a wavetable
VIBRATO_HZ = 5.5
STRUM_SECONDS = 0.012  # delay between the voices of a chord, as a hand strums or rolls it
CHORD_DEGREES = (0, 3, 4, 5)  # progressions wander over I, IV, V and vi
BASS_LOWEST_MIDI = 28  # E1, 41 Hz: bass lines are raised an octave until they reach it
FORMATS = {  # extension -> soundfile (format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PENTATONIC = (0, 2, 4, 7, 9)


@dataclass(frozen=True)
class Timbre:
    """How one note sounds. Times are in seconds; `decay` is the fundamental's time constant (None: sustained)."""

    waveform: str = "partials"  # "partials" (the `harmonics` below), "square" or "saw" (naive, buzzy)
    harmonics: tuple[float, ...] = (1.0,)  # partial amplitudes, fundamental first
    attack: float = 0.005
    decay: float | None = 0.5
    damping: float = 0.0  # partial k decays 1 + damping * (k - 1) times faster: plucked and struck strings darken
    release: float = 0.05
    unison: int = 1  # detuned copies spread over `detune` cents: a chorus, for pads
    detune: float = 0.0
    vibrato: float = 0.0  # cents
    click: float = 0.0  # level of a noise burst at the onset: a hammer, pick or plectrum


@dataclass(frozen=True)
class Style:
    """One musical style. Patterns are on a 16th-note grid ("x" hit, "o" soft hit, "." rest), repeated."""

    name: str
    lead: Timbre
    bpm: tuple[float, float]
    scale: tuple[int, ...]
    root: int  # MIDI note of the melody's tonic before transposition: sets the register
    transpose: tuple[int, int]  # semitones, drawn per clip
    step: float  # melody grid, in beats
    hold: tuple[int, ...]  # note lengths to draw from, in melody steps
    rest: float  # probability that a melody note is a rest
    span: int  # melody range, in scale degrees above the tonic
    chord: int = 0  # voices of the accompanying chord (stacked thirds an octave below the tonic); 0: none
    chord_every: float = 4.0  # beats per chord of the progression
    comp_every: float = 4.0  # beats between strikes of the chord
    bass: Timbre | None = None
    bass_pattern: str = "x..............."  # each hit plays the chord root two octaves down until the next hit
    kick: str = ""
    snare: str = ""
    hat: str = ""
    hat_decay: float = 0.04  # seconds: closed hats are short, open hats and shakers longer
    swing: float = 0.0  # fraction of a 16th by which the off-beat 16ths come late
    reverb: float = 0.0  # seconds for the room's tail to fall by 60 dB; 0: dry
    hiss: float = 0.0  # background noise level relative to the music (tape, vinyl)


PIANO = Timbre(harmonics=(1, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05), attack=0.003, decay=1.0, damping=0.6,
               release=0.15, click=0.03)  # fmt: skip
STYLES = (
    Style("piano-ballad", PIANO, bpm=(60, 78), scale=MAJOR, root=67, transpose=(-5, 4), step=0.5,
          hold=(1, 1, 2, 2, 4), rest=0.2, span=9, chord=3, chord_every=4, comp_every=2,
          bass=Timbre(harmonics=(1, 0.4, 0.15), decay=1.5, damping=0.5, release=0.2), bass_pattern="x" + "." * 15,
          reverb=1.0),
    Style("techno", Timbre("saw", attack=0.002, decay=0.12, release=0.02), bpm=(124, 134), scale=MINOR, root=50,
          transpose=(-3, 3), step=0.5, hold=(1,), rest=0.45, span=5,
          bass=Timbre("square", attack=0.002, decay=0.15, release=0.02), bass_pattern="..x...x...x...x.",
          kick="x...x...x...x...", snare="....x.......x...", hat="..x...x...x...x.", hat_decay=0.09, reverb=0.35),
    Style("chiptune", Timbre("square", attack=0.001, decay=None, release=0.01), bpm=(140, 165), scale=PENTATONIC,
          root=76, transpose=(-4, 4), step=0.25, hold=(1, 1, 2), rest=0.15, span=9,
          bass=Timbre(harmonics=(1, 0, 1 / 9, 0, 1 / 25, 0, 1 / 49), decay=None, release=0.01),  # triangle
          bass_pattern="x...x...x...x...", kick="x.......x.......", snare="....x.......x...", hat="x.x.x.x.x.x.x.x.",
          hat_decay=0.02),
    Style("string-pad", Timbre("saw", attack=0.5, decay=None, release=0.8, unison=3, detune=14, vibrato=8),
          bpm=(64, 86), scale=MINOR, root=64, transpose=(-5, 5), step=2, hold=(1, 1, 2), rest=0.15, span=7, chord=3,
          chord_every=8, comp_every=8, reverb=1.8),
    Style("folk-guitar", Timbre(harmonics=(1, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1), attack=0.001, decay=0.7,
                                damping=1.2, release=0.08, click=0.06),
          bpm=(92, 116), scale=MAJOR, root=64, transpose=(-2, 5), step=0.5, hold=(1, 1, 2), rest=0.3, span=9,
          chord=4, chord_every=4, comp_every=1, hat="..x...x...x...x.", hat_decay=0.06, reverb=0.5),
    Style("drum-and-bass", Timbre(harmonics=(1, 0, 0.4, 0, 0.2), attack=0.01, decay=0.8, release=0.3, vibrato=5),
          bpm=(168, 178), scale=MINOR, root=72, transpose=(-3, 3), step=1, hold=(1, 2), rest=0.5, span=7,
          bass=Timbre(harmonics=(1, 0.1), decay=None, release=0.05), bass_pattern="x.........x.....",
          kick="x.........x.....", snare="....x..o.x..x...", hat="x.xxx.xxx.xxx.xx", hat_decay=0.025, reverb=0.3),
    Style("lofi-hiphop", Timbre(harmonics=(1, 0.4, 0.15, 0.05), attack=0.004, decay=1.3, damping=0.3, release=0.2,
                                vibrato=4, click=0.01),
          bpm=(70, 88), scale=DORIAN, root=65, transpose=(-4, 4), step=0.5, hold=(1, 2, 3), rest=0.45, span=7,
          chord=4, chord_every=4, comp_every=4, bass=Timbre(harmonics=(1, 0.25), decay=0.6, release=0.1),
          bass_pattern="x.....x...x.....", kick="x......x..x.....", snare="....x.......x...",
          hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, swing=0.35, reverb=0.6, hiss=0.03),
)  # fmt: skip


@dataclass(frozen=True)
class SynthTrack:
    path: Path
    style: str  # the style's name, which is also its folder's name


class _Note(NamedTuple):
    onset: float  # seconds
    length: float  # seconds, before the release
    midi: int
    velocity: float


def style_names() -> list[str]:
    """Names of the built-in styles, most distinct first (so the first few make a good small library)."""
    return [style.name for style in STYLES]


def get_style(name: str) -> Style:
    for style in STYLES:
        if style.name == name:
            return style
    raise ValueError(f"unknown style {name!r}; choose from {', '.join(style_names())}")


def synthesise_clip(
    style: Style, seconds: float, sample_rate: int, rng: np.random.Generator, stereo: bool = False
) -> np.ndarray:
    """A new clip in `style`: float32 with peak PEAK, shape [samples] or, with `stereo`, [samples, 2].

    The mono clip is the downmix of the stereo one drawn from the same generator state.
    """
    n = int(round(seconds * sample_rate))
    style = _vary(style, rng)
    beat = 60.0 / rng.uniform(*style.bpm)
    tonic = style.root + int(rng.integers(style.transpose[0], style.transpose[1] + 1))
    chords = [0] + [int(rng.choice(CHORD_DEGREES)) for _ in range(int(seconds / beat / style.chord_every) + 1)]
    parts = [
        _render(style.lead, _melody(style, beat, tonic, chords, seconds, rng), n, sample_rate, rng),
        _render(style.lead, _comping(style, beat, tonic, chords, seconds), n, sample_rate, rng),
        _render(style.bass, _bassline(style, beat, tonic, chords, seconds), n, sample_rate, rng),
        _drums(style, beat, n, sample_rate, rng),
    ]  # each [n]
    gains = rng.uniform((0.7, 0.35, 0.5, 0.6), (1.0, 0.7, 0.9, 1.0))
    pans = rng.uniform(0.3, 0.7, size=len(parts))  # 0 is hard left; everything stays near the middle
    stems = np.stack([part / max(float(np.sqrt(np.mean(part**2))), 1e-9) for part in parts])  # [4, n], unit RMS
    left = (gains * np.sqrt(1 - pans)) @ stems
    right = (gains * np.sqrt(pans)) @ stems
    mix = np.stack([left, right]).astype(np.float32)  # [2, n]
    mix += style.hiss * float(np.sqrt(np.mean(mix**2))) * rng.standard_normal(mix.shape)
    if style.reverb > 0:
        mix = _room(mix, style.reverb, sample_rate, rng)
    clip = mix.T if stereo else mix.mean(axis=0)
    return (clip * (PEAK / max(float(np.abs(clip).max()), 1e-9))).astype(np.float32)


def write_library(
    directory: Path,
    styles: int | list[str] = 4,
    per_style: int = 8,
    seconds: float = 12.0,
    sample_rate: int = 22050,
    formats: tuple[str, ...] = ("wav",),
    seed: int = 0,
    stereo: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[SynthTrack]:
    """Write `per_style` clips of each style to `directory/<style>/<style>-NN.<ext>`; formats rotate per clip.

    `styles` is a count (the first of `style_names()`) or a list of names. The same seed gives the same music;
    a clip depends only on (seed, style, NN), not on which other styles or how many clips are asked for.
    `progress(done, total)` is called after each file.
    """
    chosen = list(STYLES[:styles]) if isinstance(styles, int) else [get_style(name) for name in styles]
    if isinstance(styles, int) and not 1 <= styles <= len(STYLES):
        raise ValueError(f"styles must be between 1 and {len(STYLES)}, not {styles}")
    if not formats:
        raise ValueError("formats must name at least one format")
    from musimilar.audio.encode import ENCODINGS

    for extension in formats:
        if extension not in ENCODINGS:
            _soundfile_format(extension)
    tracks = []
    for style in chosen:
        for index in range(per_style):
            rng = np.random.default_rng([seed, zlib.crc32(style.name.encode()), index])
            extension = formats[index % len(formats)]
            path = Path(directory) / style.name / f"{style.name}-{index + 1:02d}.{extension}"
            write_audio(path, synthesise_clip(style, seconds, sample_rate, rng, stereo=stereo), sample_rate)
            tracks.append(SynthTrack(path, style.name))
            if progress is not None:
                progress(len(tracks), len(chosen) * per_style)
    return tracks


def write_audio(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write samples ([n] or [n, channels]) in the format named by the suffix, atomically (temp file + rename):
    wav, flac, ogg and mp3 through libsndfile, the formats of musimilar.audio.encode through FFmpeg."""
    from musimilar.audio.encode import encoding_of, write_encoded

    path = Path(path)
    encoding = encoding_of(path) if path.suffix.lstrip(".").lower() not in FORMATS else None
    file_format, subtype = ("", "") if encoding else _soundfile_format(path.suffix.lstrip(".").lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")  # not an audio suffix: scanners skip it
    try:
        if encoding:  # formats only FFmpeg writes (m4a, wma, webm, ...)
            write_encoded(temporary, samples, sample_rate, encoding)
        else:
            soundfile.write(temporary, samples, sample_rate, format=file_format, subtype=subtype)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _soundfile_format(extension: str) -> tuple[str, str]:
    if extension not in FORMATS:
        raise ValueError(f"cannot write .{extension} files; choose from {', '.join(FORMATS)}")
    file_format, subtype = FORMATS[extension]
    if file_format not in soundfile.available_formats() or subtype not in soundfile.available_subtypes(file_format):
        raise ValueError(f"this libsndfile ({soundfile.__libsndfile_version__}) cannot write .{extension} files")
    return file_format, subtype


def _vary(style: Style, rng: np.random.Generator) -> Style:
    """The style with this clip's instruments: partial levels within ±25 %, decays within ±20 %."""

    def vary(timbre: Timbre | None) -> Timbre | None:
        if timbre is None:
            return None
        levels = np.asarray(timbre.harmonics) * rng.uniform(0.75, 1.25, len(timbre.harmonics))
        harmonics = tuple(float(level) for level in levels)
        decay = None if timbre.decay is None else timbre.decay * float(rng.uniform(0.8, 1.2))
        return replace(timbre, harmonics=harmonics, decay=decay)

    return replace(style, lead=vary(style.lead), bass=vary(style.bass))


def _midi(style: Style, tonic: int, degree: int) -> int:
    octave, index = divmod(degree, len(style.scale))
    return tonic + 12 * octave + style.scale[index]


def _chord_at(style: Style, chords: list[int], beats: float) -> int:
    """The scale degree of the chord sounding at `beats`; the last chord holds past the end."""
    return chords[min(int(beats // style.chord_every), len(chords) - 1)]


def _seconds(style: Style, beats: float, beat: float) -> float:
    """Time of a grid position, with off-beat 16ths delayed by the swing."""
    sixteenth = beats * 4
    if style.swing and abs(sixteenth - round(sixteenth)) < 1e-6 and round(sixteenth) % 2 == 1:
        beats += style.swing / 4
    return beats * beat


def _melody(style: Style, beat: float, tonic: int, chords: list[int], seconds: float, rng) -> list[_Note]:
    """A random walk over the scale that now and then jumps to a tone of the current chord."""
    notes, degree, beats = [], int(rng.integers(0, style.span // 2 + 1)), 0.0
    while beats * beat < seconds:
        steps = int(rng.choice(style.hold))
        if rng.random() >= style.rest:
            if rng.random() < 0.2:
                degree = _chord_at(style, chords, beats) + int(rng.choice((0, 2, 4)))
            else:
                degree += int(rng.choice((-2, -1, -1, 0, 1, 1, 2)))
            degree = int(np.clip(degree, 0, style.span))
            length = steps * style.step * beat
            notes.append(_Note(_seconds(style, beats, beat), length, _midi(style, tonic, degree), rng.uniform(0.6, 1)))
        beats += steps * style.step
    return notes


def _comping(style: Style, beat: float, tonic: int, chords: list[int], seconds: float) -> list[_Note]:
    notes, beats = [], 0.0
    while style.chord and beats * beat < seconds:
        root = _chord_at(style, chords, beats)
        for voice in range(style.chord):
            midi = _midi(style, tonic - 12, root + 2 * voice)
            notes.append(_Note(beats * beat + voice * STRUM_SECONDS, style.comp_every * beat, midi, 0.8))
        beats += style.comp_every
    return notes


def _bassline(style: Style, beat: float, tonic: int, chords: list[int], seconds: float) -> list[_Note]:
    if style.bass is None:
        return []
    hits = [i for i, mark in enumerate(style.bass_pattern) if mark != "."]
    gaps = np.diff(hits + [hits[0] + len(style.bass_pattern)]) / 4  # beats until the next hit
    low = tonic - 24
    while low < BASS_LOWEST_MIDI:
        low += 12
    notes, bar = [], 0.0
    while bar * beat < seconds:
        for hit, gap in zip(hits, gaps):
            beats = bar + hit / 4
            midi = _midi(style, low, _chord_at(style, chords, beats))
            notes.append(_Note(_seconds(style, beats, beat), 0.9 * gap * beat, midi, 1.0))
        bar += len(style.bass_pattern) / 4
    return notes


def _render(timbre: Timbre | None, notes: list[_Note], n: int, sample_rate: int, rng) -> np.ndarray:
    """Sum the notes into [n] samples. Each pitch is rendered once, as long as its longest note, and reused."""
    out = np.zeros(n, np.float32)
    if timbre is None or not notes:
        return out
    release = max(int(timbre.release * sample_rate), 1)
    longest: dict[int, int] = {}
    for note in notes:
        longest[note.midi] = max(longest.get(note.midi, 0), int(note.length * sample_rate) + release)
    waves = {midi: _tone(timbre, midi, size, sample_rate, rng) for midi, size in sorted(longest.items())}
    fade = np.linspace(1.0, 0.0, release, dtype=np.float32)
    for note in notes:
        start, hold = int(note.onset * sample_rate), int(note.length * sample_rate)
        wave = waves[note.midi]
        body = wave[: max(0, min(hold, n - start))]
        out[start : start + len(body)] += note.velocity * body
        tail = wave[hold : hold + release][: max(0, n - start - hold)]
        out[start + hold : start + hold + len(tail)] += note.velocity * tail * fade[: len(tail)]
    return out


def _tone(timbre: Timbre, midi: int, size: int, sample_rate: int, rng) -> np.ndarray:
    """One note of `size` samples at full level, without its release."""
    hz = 440.0 * 2 ** ((midi - 69) / 12)
    if timbre.decay is not None:  # a decaying note is silent (-60 dB) after 6.9 time constants
        size = min(size, int(6.9 * timbre.decay * sample_rate) + 1)
    t = np.arange(size) / sample_rate  # seconds, float64 so that long phases stay exact
    wave = np.zeros(size)
    for cents in np.linspace(-timbre.detune / 2, timbre.detune / 2, timbre.unison):
        f = hz * 2 ** (cents / 1200)
        depth = 2 ** (timbre.vibrato / 1200) - 1
        cycles = f * t + f * depth * (1 - np.cos(2 * np.pi * VIBRATO_HZ * t)) / (2 * np.pi * VIBRATO_HZ)
        cycles += rng.random()  # each voice starts at its own phase
        if timbre.damping > 0:
            wave += _damped_partials(timbre, f, t, cycles, sample_rate)
        else:
            table = _wavetable(timbre, f, sample_rate)
            wave += table[((cycles % 1.0) * TABLE_SIZE).astype(np.int64) % TABLE_SIZE]
    wave /= timbre.unison
    envelope = np.minimum(t / timbre.attack, 1.0)
    if timbre.decay is not None:
        envelope *= np.exp(-t / timbre.decay)
    if timbre.click:
        burst = min(size, int(0.02 * sample_rate))
        wave[:burst] += timbre.click * rng.standard_normal(burst) * np.exp(-t[:burst] / 0.004)
    return (wave * envelope).astype(np.float32)


def _wavetable(timbre: Timbre, hz: float, sample_rate: int) -> np.ndarray:
    """One period of the waveform; partials at or above Nyquist are left out."""
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    if timbre.waveform == "square":
        return np.where(phase < 0.5, 0.6, -0.6)
    if timbre.waveform == "saw":
        return 0.6 * (2 * phase - 1)
    table = np.zeros(TABLE_SIZE)
    for k, amplitude in enumerate(timbre.harmonics, start=1):
        if k * hz < sample_rate / 2:
            table += amplitude * np.sin(2 * np.pi * k * phase)
    return table


def _damped_partials(timbre: Timbre, hz: float, t: np.ndarray, cycles: np.ndarray, sample_rate: int) -> np.ndarray:
    """Partials whose extra decay grows with their number (the overall decay is applied by the caller)."""
    wave = np.zeros_like(t)
    for k, amplitude in enumerate(timbre.harmonics, start=1):
        if k * hz < sample_rate / 2:
            extra = timbre.damping * (k - 1) / timbre.decay  # 1/s
            wave += amplitude * np.sin(2 * np.pi * k * cycles) * np.exp(-t * extra)
    return wave


def _drums(style: Style, beat: float, n: int, sample_rate: int, rng) -> np.ndarray:
    out = np.zeros(n, np.float32)
    sixteenth = beat / 4
    for pattern, sound, jitter in (
        (style.kick, _kick(sample_rate, rng), 0.0),
        (style.snare, _snare(sample_rate, rng), 0.0),
        (style.hat, _hat(style.hat_decay, sample_rate, rng), 0.15),  # hats drop out or shift level now and then
    ):
        if not pattern:
            continue
        for step in range(int(n / sample_rate / sixteenth) + 1):
            mark = pattern[step % len(pattern)]
            if mark == "." or rng.random() < jitter / 2:
                continue
            level = (1.0 if mark == "x" else 0.4) * (1 - jitter * rng.random())
            start = int(_seconds(style, step / 4, beat) * sample_rate)
            hit = sound[: max(0, n - start)]
            out[start : start + len(hit)] += level * hit
    return out


def _kick(sample_rate: int, rng) -> np.ndarray:
    """A sine whose pitch falls fast from about 150 Hz to about 50 Hz."""
    t = np.arange(int(0.35 * sample_rate)) / sample_rate
    high, low = rng.uniform(130, 170), rng.uniform(45, 58)
    hz = low + (high - low) * np.exp(-t / 0.03)
    return (np.sin(2 * np.pi * np.cumsum(hz) / sample_rate) * np.exp(-t / 0.12)).astype(np.float32)


def _snare(sample_rate: int, rng) -> np.ndarray:
    """Noise for the wires over a short 180-200 Hz tone for the drum's head."""
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    head = 0.5 * np.sin(2 * np.pi * rng.uniform(180, 200) * t) * np.exp(-t / 0.05)
    wires = 0.7 * rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.06, 0.1))
    return (head + wires).astype(np.float32)


def _hat(decay: float, sample_rate: int, rng) -> np.ndarray:
    """Differenced noise (a crude high-pass) with a short decay."""
    t = np.arange(int(6 * decay * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(len(t) + 1))
    return (0.5 * noise * np.exp(-t / decay)).astype(np.float32)


def _room(mix: np.ndarray, seconds: float, sample_rate: int, rng) -> np.ndarray:
    """Convolve each channel [2, n] with its own exponentially decaying noise: a diffuse tail, -60 dB at `seconds`."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    impulse = rng.standard_normal((2, len(t))) * np.exp(-6.9 * t / seconds)
    impulse /= np.sqrt(np.sum(impulse**2, axis=1, keepdims=True))  # unit energy: the tail is as loud as the dry sound
    impulse = impulse.astype(np.float32)  # float32 FFTs: half the work, and precision to spare
    size = _fft_size(mix.shape[1] + len(t) - 1)
    wet = np.fft.irfft(np.fft.rfft(mix, size) * np.fft.rfft(impulse, size), size)[:, : mix.shape[1]]
    return mix + 0.35 * wet


def _fft_size(minimum: int) -> int:
    """The smallest 2^a 3^b 5^c >= minimum: FFTs of such sizes are fast, often twice as fast as the next 2^a."""
    best = 1 << int(np.ceil(np.log2(minimum)))
    power_of_5 = 1
    while power_of_5 < best:
        size = power_of_5
        while size < best:
            candidate = size
            while candidate < minimum:
                candidate *= 2
            best = min(best, candidate)
            size *= 3
        power_of_5 *= 5
    return best

"""Settings: one pydantic model per concern, merged in one place.

Precedence, lowest first: defaults < TOML file < environment (MUSIMILAR_<SECTION>_<KEY>) < command-line flags.
The TOML file is `--config FILE`, else `musimilar.toml` in the library home. Its sections are the fields of
`Settings` ([audio], [mel], [augment], [model], [train], [embed], [index], [system], and for the players
[subsonic], [mpd] and [playlist]). `MUSIMILAR_THREADS` is short for `MUSIMILAR_SYSTEM_THREADS`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from musimilar.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE_NAME = "musimilar.toml"
ENV_PREFIX = "MUSIMILAR_"
ENV_SHORT_NAMES = {"MUSIMILAR_THREADS": ("system", "threads")}  # besides MUSIMILAR_<SECTION>_<KEY>


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class AudioSettings(Section):
    """How files are decoded: every track becomes mono float32 at `sample_rate`."""

    sample_rate: int = Field(22050, ge=8000, le=192000, description="Hz after resampling")
    max_seconds: float = Field(
        600.0, gt=0, description="seconds kept per track (the middle part of longer tracks); caps cache size"
    )
    min_seconds: float = Field(1.0, ge=0, description="shorter tracks are rejected as 'too short'")


class MelSettings(Section):
    """The log-mel transform. dB are relative to a fixed reference, so a crop's log-mel never depends on the clip."""

    n_fft: int = Field(2048, ge=64)
    hop_length: int = Field(512, ge=16)
    n_mels: int = Field(128, ge=8, le=512)
    f_min: float = Field(0.0, ge=0)
    f_max: float | None = Field(None, description="Hz; None means sample_rate / 2")
    amin: float = Field(1e-10, gt=0, description="power floor: 1e-10 is -100 dB")

    @model_validator(mode="after")
    def _check_band(self) -> MelSettings:
        if self.f_max is not None and self.f_max <= self.f_min:
            raise ValueError("f_max must be above f_min")
        return self


class AugmentSettings(Section):
    """SimCLR views of log-mel crops. Each view applies `per_view` augmentations drawn at random from the five kinds,
    each then applied with its own probability."""

    crop_seconds: float = Field(3.0, gt=0, description="length of a training crop")
    per_view: int = Field(3, ge=0, le=5, description="augmentation kinds drawn for each view")
    gain_p: float = Field(0.8, ge=0, le=1)
    gain_db: float = Field(6.0, ge=0, description="uniform level shift in [-gain_db, +gain_db] dB")
    contrast: float = Field(0.25, ge=0, lt=1, description="scale about the mean in [1-contrast, 1+contrast]")
    noise_p: float = Field(0.5, ge=0, le=1)
    noise_snr_db: tuple[float, float] = Field((10.0, 30.0), description="SNR range of added Gaussian noise, dB")
    reverse_p: float = Field(0.5, ge=0, le=1)
    freq_mask_p: float = Field(0.8, ge=0, le=1)
    freq_mask_max: int = Field(16, ge=0, description="widest frequency mask, in mel bins")
    freq_masks: int = Field(2, ge=0)
    time_mask_p: float = Field(0.8, ge=0, le=1)
    time_mask_max: int = Field(20, ge=0, description="widest time mask, in frames")
    time_masks: int = Field(2, ge=0)
    # Style augmentations (key, tempo, a second track faintly beneath): each fires on its own, before the kinds
    # above. Time stretch is on (with multi-crop it won the 30-minute ablations of docs/quality.md); the others are off.
    pitch_p: float = Field(0.0, ge=0, le=1, description="chance of a shift along the mel axis")
    pitch_max_bins: float = Field(4.0, ge=0, description="largest shift, in mel bins (fractional shifts interpolate)")
    stretch_p: float = Field(0.5, ge=0, le=1, description="chance of a resized time crop")
    stretch_max: float = Field(0.2, ge=0, lt=1, description="the crop keeps 1 - stretch_max to all of the frames")
    mix_p: float = Field(0.0, ge=0, le=1, description="chance of mixing in another track of the batch (BYOL-A)")
    mix_max: float = Field(0.4, ge=0, le=0.5, description="largest share of the other track's power")


ModelSize = Literal["small", "base", "large"]

# Channels of the ConvBlocks of each preset; the embedding has the last block's width.
SIZE_CHANNELS: dict[str, tuple[int, ...]] = {
    "small": (32, 64, 128, 256),
    "base": (64, 128, 256, 512, 512),
    "large": (64, 128, 256, 512, 512, 1024),
}
# Average pooling of the log-mel (frequency and time) before the first block: 2 makes "small" four times cheaper,
# which is what lets a laptop CPU train it in half an hour; "base" and "large" see the full resolution.
SIZE_INPUT_POOL: dict[str, int] = {"small": 2, "base": 1, "large": 1}
# Encoder variants tried and removed (they did not beat the default in the ablations), with the value that is today's
# behaviour: model files written while they existed carry them.
RETIRED_MODEL_KEYS: dict[str, Any] = {"pooling": "meanmax", "levels": 1}


class ModelSettings(Section):
    """The CNN encoder and its projection head."""

    size: ModelSize = "small"
    channels: tuple[int, ...] | None = Field(None, description="overrides the preset's ConvBlock widths")
    input_pool: int | None = Field(None, ge=1, le=8, description="overrides the preset's input pooling factor")
    projection_dim: int = Field(128, ge=8, description="width of the projection head: the track vectors")
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, values: Any) -> Any:
        """Model files and resume states written while the pooling variants existed name them; the values that are
        today's only behaviour are dropped, the others refused (docs/quality.md, "Ablations")."""
        if not isinstance(values, dict) or not RETIRED_MODEL_KEYS.keys() & values.keys():
            return values
        kept = dict(values)
        for key, current in RETIRED_MODEL_KEYS.items():
            if key in kept and kept.pop(key) != current:
                raise ValueError(f"{key} = {values[key]!r} is no longer available; retrain the model with this version")
        return kept

    @property
    def block_channels(self) -> tuple[int, ...]:
        return self.channels or SIZE_CHANNELS[self.size]

    @property
    def pool(self) -> int:
        return self.input_pool or SIZE_INPUT_POOL[self.size]

    @property
    def embedding_dim(self) -> int:
        return self.block_channels[-1]


LossName = Literal["ntxent", "infonce", "supcon"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "float32"]


class TrainSettings(Section):
    """How long and how the encoder trains. With neither `epochs` nor `minutes` the run stops by itself when the
    validation segment retrieval has not improved for `patience` epochs (after `min_steps`), or at a ceiling
    scaled to the library (docs/guide.md "Model sizes and time budgets")."""

    epochs: int | None = Field(None, ge=1, description="passes over the library; None: stop when no longer improving")
    patience: int = Field(10, ge=1, description="epochs without a better validation retrieval before stopping")
    min_steps: int = Field(1000, ge=1, description="optimizer steps before a run may stop for lack of improvement")
    ceiling_epochs: int = Field(100, ge=1, description="the most epochs a run without epochs or minutes trains")
    max_steps: int = Field(100000, ge=1, description="the most steps a run without epochs or minutes trains")
    batch_size: int = Field(
        128, ge=2, description="tracks per step (each with views_per_track crops): more negatives per positive"
    )
    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of steps with a linear warm-up")
    grad_clip: float = Field(1.0, gt=0)
    loss: LossName = "ntxent"
    temperature: float = Field(
        0.1, gt=0, description="of the contrastive loss; higher groups alike tracks more (docs/quality.md)"
    )
    by: str | None = Field(None, description="label key for supervised contrastive training (e.g. folder, genre)")
    minutes: float | None = Field(None, gt=0, description="time budget; training ends cleanly when it is spent")
    device: DeviceName = "auto"
    seed: int = 0
    crops_per_track: int = Field(8, ge=1, description="positive pairs drawn from each track per epoch")
    views_per_track: int = Field(
        4, ge=2, le=8, description="crops of each track in a batch; above 2: multi-crop, the track as the label"
    )
    val_fraction: float = Field(0.05, ge=0, lt=0.5, description="share of tracks held out for validation")
    compile: bool = False
    precision: Precision = Field(
        "auto", description="auto: train in bf16 where the device computes it natively (recent GPUs, AVX512-BF16, AMX)"
    )
    loader_workers: int = Field(2, ge=0, description="background threads that read crops from the cache")

    @model_validator(mode="after")
    def _check_loss_takes_the_views(self) -> TrainSettings:
        if self.views_per_track > 2 and self.loss == "infonce":
            raise ValueError(
                "loss infonce compares pairs of crops: set views_per_track = 2 with it (above 2, multi-crop trains "
                "a supervised contrastive loss with the track, or with loss supcon the --by label, as the class)"
            )
        return self


class EmbedSettings(Section):
    crops: int = Field(8, ge=1, description="crops spread over each track, averaged into its embedding")
    crop_seconds: float = Field(3.0, gt=0, description="as long as a training crop: what the model knows best")
    batch_size: int = Field(64, ge=1)
    device: DeviceName = "auto"


class IndexSettings(Section):
    trees: int = Field(50, ge=1)
    search_k: int = Field(
        30000,
        description="nodes inspected per query (-1: Annoy's trees * k, too few here);"
        " 30000 gives recall@10 >= 0.96 up to 1M tracks (docs/performance.md)",
    )
    metric: Literal["angular"] = "angular"
    exact_below: int = Field(
        100000,
        ge=0,
        description="libraries smaller than this are searched exactly"
        " (at most ~11 ms a query at 256-d, perfect recall, nothing to rebuild)",
    )
    delta_limit: int = Field(2000, ge=0, description="tracks embedded after the build before a rebuild is due")


class _NoSecrets(Section):
    """Player sections: addresses and user names only; a password is read from the environment or a prompt."""

    password_variable: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _refuse_password(cls, values: Any) -> Any:
        if isinstance(values, dict) and "password" in values:
            raise ValueError(f"passwords are not settings: set {cls.password_variable} or answer the prompt")
        return values


class SubsonicSettings(_NoSecrets):
    """A Subsonic API server (Navidrome, Gonic, Airsonic-Advanced, Supysonic) for `musimilar playlist push`."""

    password_variable: ClassVar[str] = "MUSIMILAR_SUBSONIC_PASSWORD"
    url: str | None = Field(None, description="the server's address, e.g. http://127.0.0.1:4533")
    user: str | None = None
    library_root: str | None = Field(None, description="this machine's library folder that the server also sees")
    server_root: str | None = Field(
        None, description="how the server's song paths write library_root ('' when they are relative to it)"
    )
    timeout: float = Field(30.0, gt=0, description="seconds to wait for an answer")


class MpdSettings(_NoSecrets):
    """The MPD that `musimilar radio --mpd` follows."""

    password_variable: ClassVar[str] = "MUSIMILAR_MPD_PASSWORD"
    music_directory: str | None = Field(None, description="MPD's music_directory as this machine sees it")
    keep: int = Field(5, ge=1, le=500, description="tracks kept queued after the current one")


class PlaylistSettings(Section):
    """Playlist files."""

    relative_to: str | None = Field(None, description="write paths relative to this folder (a player's playlists)")


class SystemSettings(Section):
    threads: int | None = Field(
        None, ge=1, description="cores torch, BLAS and worker pools may use (default: the cores this process may use)"
    )


class RetrievalSettings(Section):
    """Post-processing fitted to the library's embeddings after `embed` (musimilar/postprocess.py)."""

    whiten: bool = Field(
        True, description="centre the embeddings and whiten them (PCA) with shrinkage (from 50 tracks on)"
    )
    whiten_dim: int | None = Field(None, ge=1, description="principal axes kept (None: all)")
    # 1.0 and 20: chosen on the tune labels of 30-minute models; the projections need centring, not whitening
    # (docs/quality.md, "The vector a model ships").
    whiten_shrinkage: float = Field(1.0, ge=0, le=1, description="0 whitens fully, 1 only centres and rotates")
    csls_k: int = Field(20, ge=0, description="hubness reduction: neighbours in each track's CSLS radius (0: off)")


class Settings(Section):
    audio: AudioSettings = AudioSettings()
    mel: MelSettings = MelSettings()
    augment: AugmentSettings = AugmentSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    embed: EmbedSettings = EmbedSettings()
    index: IndexSettings = IndexSettings()
    subsonic: SubsonicSettings = SubsonicSettings()
    mpd: MpdSettings = MpdSettings()
    playlist: PlaylistSettings = PlaylistSettings()
    system: SystemSettings = SystemSettings()
    retrieval: RetrievalSettings = RetrievalSettings()


SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


def load_settings(
    config_file: Path | None = None,
    home: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults < TOML < environment < flags and validate once.

    `flags` maps dotted names (`"train.epochs"`) to values; None values are ignored (flag not given).
    """
    if config_file is None and home is not None and (home / CONFIG_FILE_NAME).is_file():
        config_file = home / CONFIG_FILE_NAME
    layers: list[tuple[str, dict[str, dict[str, Any]]]] = []
    if config_file is not None:
        layers.append((str(config_file), _read_toml(config_file)))
    layers.append(("environment", _from_environment(os.environ if environ is None else environ)))
    layers.append(("command line", _nest({k: v for k, v in (flags or {}).items() if v is not None})))

    merged: dict[str, dict[str, Any]] = {}
    for source, layer in layers:
        _validate_layer(source, layer)
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)
    try:
        return Settings.model_validate(merged)
    except ValidationError as error:  # only cross-layer combinations can fail here
        raise SettingsError(_describe(error, "settings")) from None


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{path}: not valid TOML: {error}") from None
    for section, values in data.items():
        if not isinstance(values, dict):
            raise SettingsError(f"{path}: {section}: expected a [section] table (one of {', '.join(SECTIONS)})")
    return data


def _from_environment(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for name, (section, key) in ENV_SHORT_NAMES.items():
        if name in environ:
            values.setdefault(section, {})[key] = _parse_env_value(environ[name])
    for section in SECTIONS:
        section_model = Settings.model_fields[section].annotation
        for key in section_model.model_fields:  # type: ignore[union-attr]
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                text_only = section_model.model_fields[key].annotation in (str, str | None)  # type: ignore
                raw = environ[name]
                values.setdefault(section, {})[key] = raw if text_only else _parse_env_value(raw)
    return values


def _parse_env_value(text: str) -> Any:
    """Environment values are strings; a TOML literal ("[10, 30]", "true") is read as such."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _nest(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in flat.items():
        section, key = dotted.split(".", 1)
        nested.setdefault(section, {})[key] = value
    return nested


def _validate_layer(source: str, layer: dict[str, dict[str, Any]]) -> None:
    """Validate one source alone, so an error names the file (or variable) that caused it."""
    try:
        Settings.model_validate(layer)
    except ValidationError as error:
        raise SettingsError(_describe(error, source)) from None


def _describe(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
        if source == "environment" and item["loc"]:
            key = f"{ENV_PREFIX}{'_'.join(str(p) for p in item['loc'][:2])}".upper()
        problems.append(f"{source}: {key}: {message}")
    return "; ".join(problems)


def settings_as_toml(settings: Settings) -> str:
    """The effective settings as a TOML document (what `musimilar config show` prints)."""
    lines: list[str] = []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for key, value in getattr(settings, section).model_dump().items():
            if value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)

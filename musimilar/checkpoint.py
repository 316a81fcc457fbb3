"""One model file: the network's weights (encoder and projection head) plus everything needed to reproduce its
embeddings.

The file is a plain dict of tensors, numbers and strings, saved with `torch.save` and read with
`torch.load(weights_only=True)`: loading never unpickles code. Inference takes the audio and mel settings from the
file, never from current flags.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from musimilar import __version__
from musimilar.encoder import ContrastiveModel
from musimilar.errors import CheckpointError
from musimilar.home import Home, atomic_path
from musimilar.model_card import write_card
from musimilar.settings import AudioSettings, EmbedSettings, MelSettings, ModelSettings, Settings

FORMAT = "musimilar-model"
FORMAT_VERSION = 2  # 2: the projection head ships and gives the vectors; 1: the encoder alone


@dataclass
class LoadedModel:
    network: ContrastiveModel  # in eval mode; `network.embed` gives the vectors
    audio: AudioSettings
    mel: MelSettings
    model: ModelSettings
    embed: EmbedSettings
    fingerprint: str
    training: dict[str, Any] = field(default_factory=dict)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # label key -> {"labels", "weight", "bias"}
    path: Path | None = None

    @property
    def dim(self) -> int:
        """The width of the vectors it gives."""
        return self.network.output_dim


def model_fingerprint(state: dict[str, torch.Tensor], preprocessing: dict[str, Any]) -> str:
    """Identifies the function file -> embedding: the weights and the settings that shape the input."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr(sorted(preprocessing.items())).encode())
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_model(
    path: Path,
    network: ContrastiveModel,
    audio: AudioSettings,
    mel: MelSettings,
    model: ModelSettings,
    embed: EmbedSettings,
    training: dict[str, Any] | None = None,
    heads: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Write the model file atomically; returns its fingerprint."""
    state = {name: tensor.detach().to("cpu").clone() for name, tensor in network.state_dict().items()}
    preprocessing = {"audio": audio.model_dump(), "mel": mel.model_dump(), "model": model.model_dump()}
    fingerprint = model_fingerprint(state, preprocessing)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "musimilar_version": __version__,
        "fingerprint": fingerprint,
        **preprocessing,
        "embed": embed.model_dump(),
        "network": state,
        "training": training or {},
        "heads": heads or {},
    }
    with atomic_path(path) as temp:
        torch.save(payload, temp)
    write_card(path, payload)
    return fingerprint


def read_model_file(path: Path) -> dict[str, Any]:
    """The raw payload, checked for format; raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged or foreign files
        raise CheckpointError(path, f"cannot read it ({type(error).__name__}: {str(error).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "not a musimilar model file")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(path, "written by a newer musimilar; upgrade to read it")
    return payload


def load_model(path: Path, device: torch.device | str = "cpu") -> LoadedModel:
    payload = read_model_file(path)
    try:
        model = ModelSettings.model_validate(payload["model"])
        loaded = LoadedModel(
            network=_network(payload, model).to(device).eval(),
            audio=AudioSettings.model_validate(payload["audio"]),
            mel=MelSettings.model_validate(payload["mel"]),
            model=model,
            embed=EmbedSettings.model_validate(payload["embed"]),
            fingerprint=payload["fingerprint"],
            training=payload.get("training", {}),
            heads=payload.get("heads", {}),
            path=path,
        )
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(path, f"damaged or incompatible contents ({error})") from None
    return loaded


def _network(payload: dict[str, Any], model: ModelSettings) -> ContrastiveModel:
    """The network of a payload; a format-1 file holds the encoder alone, whose output was the vector."""
    if payload.get("format_version", 1) < 2:
        network = ContrastiveModel(model, projection=False)
        network.encoder.load_state_dict(payload["encoder"])
        return network
    network = ContrastiveModel(model)
    network.load_state_dict(payload["network"])
    return network


def add_head(path: Path, by: str, head: dict[str, Any]) -> None:
    """Store a classifier head for label key `by` in a model file, atomically. The network's weights are copied
    unchanged, so the fingerprint (and every embedding made with the model) stays valid."""
    payload = read_model_file(path)
    payload["heads"] = {**payload.get("heads", {}), by: head}
    with atomic_path(path) as temp:
        torch.save(payload, temp)
    write_card(path, payload)


EPOCH_MODEL_FILE = "last-epoch.pt"


def save_epoch_model(home: Home, settings: Settings, network: ContrastiveModel, training: dict[str, Any]) -> Path:
    """The model as it stands after an epoch, as a complete model file (`musimilar embed --model` takes it)."""
    path = home.training_dir / EPOCH_MODEL_FILE
    save_model(path, network, settings.audio, settings.mel, settings.model, settings.embed, training)
    return path


def publish_model(
    home: Home, settings: Settings, network: ContrastiveModel, training: dict[str, Any]
) -> tuple[Path, str]:
    """Write the trained network as the home's current model (and keep a copy named by its fingerprint)."""
    current = home.current_model_path
    fingerprint = save_model(current, network, settings.audio, settings.mel, settings.model, settings.embed, training)
    with atomic_path(home.models_dir / f"model-{fingerprint}.pt") as temp:
        shutil.copyfile(current, temp)
    return current, fingerprint

"""A model file's fingerprint, readable without torch: a small JSON card beside the file.

Queries for tracks of the library only compare the stored embeddings' fingerprint with the model's: with the card,
`musimilar recommend 42` never imports torch (seconds saved on a cold command). The card also holds the settings
that shape the model's input, so a query for a file decodes its crops while torch and the model load. It also holds
what `info` and the server's `/api/status` show of the model (size, epochs, when it was trained, its heads), so a
server process never imports torch for them. The card
names the model file's content hash, so a model file replaced without its card (copied in by hand, or a write
interrupted between the two) is noticed and everything read from the model itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musimilar.home import atomic_write_text
from musimilar.settings import AudioSettings, EmbedSettings, MelSettings

CARD_SUFFIX = ".card.json"


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    fingerprint: str
    audio: AudioSettings
    mel: MelSettings
    embed: EmbedSettings
    summary: dict[str, Any] | None  # model_summary of the file; None on cards written before it was kept


def model_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """What status reports of a model file's payload: its size, training epochs and figure, date and heads."""
    training = payload.get("training", {})
    return {
        "size": payload["model"].get("size"),
        "epochs": training.get("epochs"),
        "val_segment_top1": training.get("val_segment_top1"),
        "trained_at": training.get("trained_at"),
        "heads": sorted(payload.get("heads", {})),
    }


def write_card(model_path: Path, payload: dict[str, Any]) -> None:
    """Record the fingerprint, input settings and summary of the model file as it is now (after every write)."""
    card = {name: payload[name] for name in ("fingerprint", "audio", "mel", "embed")}
    card["summary"] = model_summary(payload)
    card["file_blake2b"] = file_digest(model_path)
    atomic_write_text(card_path(model_path), json.dumps(card) + "\n")


def read_card(model_path: Path) -> ModelCard | None:
    """The card of the model file, or None when there is none or it describes other file contents."""
    try:
        card = json.loads(card_path(model_path).read_text())
        if card["file_blake2b"] != file_digest(model_path):
            return None
        return ModelCard(
            str(card["fingerprint"]),
            AudioSettings.model_validate(card["audio"]),
            MelSettings.model_validate(card["mel"]),
            EmbedSettings.model_validate(card["embed"]),
            card.get("summary"),
        )
    except (OSError, ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
        return None

"""A model file's fingerprint, readable without torch: a small JSON card beside the file.

Queries for tracks of the library only compare the stored embeddings' fingerprint with the model's: with the card,
`musimilar recommend 42` never imports torch (seconds saved on a cold command). The card names the model file's
content hash, so a model file replaced without its card (copied in by hand, or a write interrupted between the two)
is noticed and the fingerprint read from the model itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from musimilar.home import atomic_write_text

CARD_SUFFIX = ".card.json"


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_card(model_path: Path, fingerprint: str) -> None:
    """Record the fingerprint of the model file as it is now (call after every write of the file)."""
    card = {"fingerprint": fingerprint, "file_blake2b": file_digest(model_path)}
    atomic_write_text(card_path(model_path), json.dumps(card) + "\n")


def card_fingerprint(model_path: Path) -> str | None:
    """The fingerprint the card gives, or None when there is no card or it describes other file contents."""
    try:
        card = json.loads(card_path(model_path).read_text())
        if card["file_blake2b"] == file_digest(model_path):
            return str(card["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None

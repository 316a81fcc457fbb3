"""Embedding a huge library in slices (`embed --shard I/N`) on several machines, and merging the slices back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from musimilar.embeddings import fit_post, load_embeddings, merge_tables, save_embeddings
from musimilar.errors import MusimilarError, SettingsError
from musimilar.home import Home
from musimilar.settings import RetrievalSettings


@dataclass
class MergeReport:
    merged: int  # shard folders merged
    tracks: int  # tracks in the home's embeddings afterwards
    model_fingerprint: str
    directory: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": []}


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 1 <= I <= N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise SettingsError(f"--shard {text}: expected I/N, e.g. 3/8") from None
    if not 1 <= index <= count:
        raise SettingsError(f"--shard {text}: I must be between 1 and N")
    return index, count


def in_shard(track_id: int, shard: tuple[int, int] | None) -> bool:
    """Tracks are dealt to shards by catalog id, so every machine sharing a catalog agrees."""
    return shard is None or track_id % shard[1] == shard[0] - 1


def shard_directory(home: Home, shard: tuple[int, int]) -> Path:
    return home.root / "embedding-shards" / f"{shard[0]}-of-{shard[1]}"


def merge_shards(home: Home, folders: list[Path], retrieval: RetrievalSettings | None = None) -> MergeReport:
    """Join shard folders (and the home's embeddings of the same model) into the home's embeddings, and fit the
    retrieval post-processing to the whole."""
    if not folders:
        raise MusimilarError("--merge needs the shard folders to merge (HOME/embedding-shards/I-of-N)")
    tables = []
    for folder in folders:
        table = load_embeddings(folder.expanduser().resolve(), mmap=False)
        if table is None:
            raise MusimilarError(f"{folder}: no embeddings here")
        tables.append(table)
    existing = load_embeddings(home.embeddings_dir, mmap=False)
    if existing is not None and existing.model_fingerprint == tables[0].model_fingerprint:
        tables.insert(0, existing)
    merged = merge_tables(tables)
    save_embeddings(home.embeddings_dir, fit_post(merged, retrieval))
    return MergeReport(len(folders), len(merged), merged.model_fingerprint, str(home.embeddings_dir))

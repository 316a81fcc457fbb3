"""The stored embeddings of a library: one L2-normalised vector per catalog track, kept as plain .npy files.

Nothing is pickled: vectors load memory-mapped with `allow_pickle=False`, so opening a large library is cheap.
`commit_file_set` / `read_file_set` are the commit protocol shared with the index: readers see the old set of
files or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from musimilar.errors import MusimilarError, NotReadyError
from musimilar.home import atomic_path, atomic_write_text
from musimilar.idlookup import IdLookup
from musimilar.postprocess import PostProcess
from musimilar.settings import RetrievalSettings

MANIFEST_NAME = "embeddings.json"
FORMAT_VERSION = 1
EMBED_REMEDY = "run `musimilar embed` again"
READ_ATTEMPTS = 3  # a reader racing a writer that removes the old generation re-reads the manifest

T = TypeVar("T")


@dataclass(eq=False)
class EmbeddingTable:
    """Row i is the embedding of catalog track `track_ids[i]` at content version `versions[i]`.

    Track ids are expected to be unique; `merge_tables` guarantees it and sorts rows by track id.
    """

    track_ids: np.ndarray  # [N] int64, catalog row ids
    vectors: np.ndarray  # [N, D] float32, L2-normalised rows
    model_fingerprint: str
    versions: np.ndarray | None = None  # [N] int64, changes when a track's audio changes; None means all 0
    post: PostProcess | None = None  # the retrieval post-processing fitted to these rows (musimilar/postprocess.py)
    _lookup: IdLookup | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.track_ids = _as_array(self.track_ids, np.int64)
        self.vectors = _as_array(self.vectors, np.float32)
        if self.versions is None:
            self.versions = np.zeros(len(self.track_ids), dtype=np.int64)
        self.versions = _as_array(self.versions, np.int64)
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be [N, D], got shape {self.vectors.shape}")
        count = len(self.vectors)
        if self.track_ids.shape != (count,) or self.versions.shape != (count,):
            raise ValueError(
                f"{count} vectors need {count} track ids and versions, got {self.track_ids.shape} and "
                f"{self.versions.shape}"
            )

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def row_of(self, track_id: int) -> int | None:
        """The row holding `track_id`, or None."""
        return self._ids().row(int(track_id))

    def rows_of(self, track_ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Rows holding each of `track_ids` ([M] int64), -1 where a track is absent."""
        wanted = np.asarray(list(track_ids) if not isinstance(track_ids, np.ndarray) else track_ids, dtype=np.int64)
        return self._ids().rows(wanted)

    def _ids(self) -> IdLookup:
        if self._lookup is None:
            self._lookup = IdLookup(self.track_ids)  # once: a server looks ids up on every request
        return self._lookup

    def subset(self, mask: np.ndarray) -> EmbeddingTable:
        """The rows selected by a boolean mask or an array of row numbers."""
        assert self.versions is not None
        post = self.post
        if post is not None and post.radius is not None:
            post = replace(post, radius=post.radius[mask])
        return EmbeddingTable(
            self.track_ids[mask], self.vectors[mask], self.model_fingerprint, self.versions[mask], post
        )

    def post_processed(self) -> EmbeddingTable:
        """The table with its post-processing applied to the vectors (itself when it has none)."""
        if self.post is None:
            return self
        return EmbeddingTable(
            self.track_ids, self.post.apply(self.vectors), self.model_fingerprint, self.versions, self.post
        )

    def live(self, versions: Mapping[int, int]) -> EmbeddingTable:
        """Only the rows whose track is in `versions` (track id -> content version) at the version embedded.

        A removed or changed track's old embedding never comes back as an answer or counts as up to date.
        """
        assert self.versions is not None
        keep = np.array([versions.get(int(i)) == int(v) for i, v in zip(self.track_ids, self.versions)], dtype=bool)
        return self if keep.all() else self.subset(keep)


def _as_array(values: Any, dtype: type) -> np.ndarray:
    """`values` as an array of `dtype`, keeping a memory-mapped array as it is when it already has that type."""
    if isinstance(values, np.ndarray) and values.dtype == dtype:
        return values
    return np.asarray(values, dtype=dtype)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm ([N, D] float32); all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def merge_tables(tables: Sequence[EmbeddingTable]) -> EmbeddingTable:
    """Join shards of one model's embeddings; a track in several shards keeps its last row. Sorted by track id."""
    if not tables:
        raise MusimilarError("there are no embeddings to merge")
    for position, table in enumerate(tables[1:], start=1):
        first = tables[0]
        if table.model_fingerprint != first.model_fingerprint:
            raise MusimilarError(
                f"embeddings of different models cannot be merged: shard 0 has model {first.model_fingerprint}, "
                f"shard {position} has model {table.model_fingerprint}"
            )
        if table.dim != first.dim:
            raise MusimilarError(
                f"embeddings of different sizes cannot be merged: shard 0 is {first.dim}-d, "
                f"shard {position} is {table.dim}-d"
            )
    all_ids = np.concatenate([table.track_ids for table in tables])
    # np.unique on the reversed ids finds each id's last occurrence, and returns the ids sorted.
    track_ids, first_in_reversed = np.unique(all_ids[::-1], return_index=True)
    keep = len(all_ids) - 1 - first_in_reversed  # [M] positions in the concatenation
    sizes = [len(table) for table in tables]
    source = np.repeat(np.arange(len(tables)), sizes)[keep]  # [M] which shard each kept row comes from
    local = keep - np.concatenate([[0], np.cumsum(sizes)[:-1]])[source].astype(np.int64)
    vectors = np.empty((len(keep), tables[0].dim), dtype=np.float32)
    versions = np.empty(len(keep), dtype=np.int64)
    for shard, table in enumerate(tables):
        assert table.versions is not None
        where = source == shard
        vectors[where] = table.vectors[local[where]]  # gathered shard by shard: no full concatenated copy
        versions[where] = table.versions[local[where]]
    return EmbeddingTable(track_ids, vectors, tables[0].model_fingerprint, versions)


def save_embeddings(directory: Path, table: EmbeddingTable) -> None:
    """Store a table in `directory` (see `commit_file_set` for why a crash never leaves a mixed set), with its
    post-processing when it has one: the raw vectors and the transform are one set."""
    assert table.versions is not None
    manifest = {
        "format": FORMAT_VERSION,
        "model_fingerprint": table.model_fingerprint,
        "dim": table.dim,
        "count": len(table),
        "written_at": utc_now(),
    }
    writers = {
        "vectors.npy": npy_writer(np.ascontiguousarray(table.vectors, dtype=np.float32)),
        "track_ids.npy": npy_writer(table.track_ids),
        "versions.npy": npy_writer(table.versions),
    }
    post = table.post
    if post is not None:
        manifest["postprocess"] = post.describe()
        writers["post_mean.npy"] = npy_writer(post.mean)
        writers["post_projection.npy"] = npy_writer(post.projection)
        if post.radius is not None:
            writers["csls_radius.npy"] = npy_writer(post.radius)
    commit_file_set(directory, MANIFEST_NAME, writers, manifest)


def load_embeddings(directory: Path, mmap: bool = True) -> EmbeddingTable | None:
    """The stored table, vectors memory-mapped when `mmap`; None when nothing is stored."""
    mode = "r" if mmap else None

    def open_set(manifest: dict[str, Any], path_of: Callable[[str], Path]) -> EmbeddingTable:
        vectors = np.load(path_of("vectors.npy"), mmap_mode=mode, allow_pickle=False)
        track_ids = np.load(path_of("track_ids.npy"), allow_pickle=False)
        versions = np.load(path_of("versions.npy"), allow_pickle=False)
        count, dim = int(manifest["count"]), int(manifest["dim"])
        if vectors.dtype != np.float32 or vectors.shape != (count, dim) or track_ids.shape != (count,):
            raise ValueError(f"files hold {vectors.shape} {vectors.dtype} vectors, the manifest says ({count}, {dim})")
        post = _load_post(manifest, path_of, count)
        return EmbeddingTable(track_ids, vectors, str(manifest["model_fingerprint"]), versions, post)

    return read_file_set(directory, MANIFEST_NAME, open_set, EMBED_REMEDY)


def _load_post(manifest: dict[str, Any], path_of: Callable[[str], Path], count: int) -> PostProcess | None:
    described = manifest.get("postprocess")
    if described is None:
        return None
    mean = np.load(path_of("post_mean.npy"), allow_pickle=False)
    projection = np.load(path_of("post_projection.npy"), allow_pickle=False)
    radius = np.load(path_of("csls_radius.npy"), allow_pickle=False) if "csls_radius.npy" in manifest["files"] else None
    if projection.shape[0] != mean.shape[0] or (radius is not None and radius.shape != (count,)):
        raise ValueError("the post-processing files do not fit the vectors")
    return PostProcess(mean, projection, radius, float(described["shrinkage"]), int(described["csls_k"]))


def fit_post(table: EmbeddingTable, retrieval: RetrievalSettings | None) -> EmbeddingTable:
    """The table with the post-processing of `retrieval` fitted to its rows (none when `retrieval` is None)."""
    from musimilar.postprocess import fit

    if retrieval is None or len(table) == 0:
        return replace(table, post=None) if table.post is not None else table
    vectors = np.asarray(table.vectors, dtype=np.float32)
    post = fit(vectors, retrieval.whiten, retrieval.whiten_dim, retrieval.whiten_shrinkage, retrieval.csls_k)
    return EmbeddingTable(table.track_ids, table.vectors, table.model_fingerprint, table.versions, post)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def npy_writer(array: np.ndarray) -> Callable[[Path], None]:
    """A writer for `commit_file_set` that stores `array` as .npy (no pickled objects)."""

    def write(path: Path) -> None:
        with open(path, "wb") as stream:
            np.save(stream, array, allow_pickle=False)

    return write


def commit_file_set(
    directory: Path, manifest_name: str, writers: Mapping[str, Callable[[Path], None]], manifest: dict[str, Any]
) -> dict[str, Any]:
    """Replace a set of files and the JSON manifest naming them, so readers never see a half-written or mixed set.

    Protocol (writers hold the home's lock; readers take none):
    1. The new set gets a generation number above any on disk; file `vectors.npy` is stored as `vectors.<gen>.npy`,
       a name no valid manifest uses yet.
    2. Each file is written to a temporary name, fsynced and renamed into place.
    3. The manifest, naming its generation's files, is written the same way, last: that rename is the commit. A crash
       before it leaves the old manifest pointing at the old, untouched files.
    4. Files of other generations and leftover temporary files are removed. A reader that already opened them keeps
       its data (POSIX); one that read the old manifest but not yet the files retries (`read_file_set`).
    Returns the manifest as written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    generation = 1 + max((gen for _, gen in _generation_files(directory, writers)), default=0)
    stored = {name: _generation_name(name, generation) for name in writers}
    for name, write in writers.items():
        with atomic_path(directory / stored[name]) as temp:
            write(temp)
    manifest = {**manifest, "generation": generation, "files": stored}
    atomic_write_text(directory / manifest_name, json.dumps(manifest, indent=1) + "\n")
    _fsync_directory(directory)
    for path, gen in _generation_files(directory, writers):
        if gen != generation:
            path.unlink(missing_ok=True)
    return manifest


def read_file_set(
    directory: Path,
    manifest_name: str,
    open_set: Callable[[dict[str, Any], Callable[[str], Path]], T],
    remedy: str,
) -> T | None:
    """Open the set committed by `commit_file_set`: `open_set(manifest, path_of)`; None when there is no manifest.

    A damaged or inconsistent set raises NotReadyError naming the manifest and `remedy`.
    """
    manifest_path = directory / manifest_name
    for attempt in range(READ_ATTEMPTS):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise NotReadyError(f"{manifest_path}: unreadable ({error}); {remedy}") from None
        try:
            files = manifest["files"]
            return open_set(manifest, lambda name: directory / files[name])
        except FileNotFoundError as error:
            if attempt + 1 == READ_ATTEMPTS:
                raise NotReadyError(f"{manifest_path}: {Path(str(error.filename)).name} is missing; {remedy}") from None
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise NotReadyError(f"{manifest_path}: does not match its files ({error}); {remedy}") from None
    raise AssertionError("unreachable")


def _generation_name(name: str, generation: int) -> str:
    stem, dot, suffix = name.partition(".")
    return f"{stem}.{generation}{dot}{suffix}"


def _generation_files(directory: Path, names: Iterable[str]) -> list[tuple[Path, int]]:
    """Stored generations of `names`, and temporary files left by interrupted writes (as generation -1)."""
    patterns = []
    for name in names:
        stem, _, suffix = name.partition(".")
        patterns.append(re.compile(rf"{re.escape(stem)}\.(\d+)\.{re.escape(suffix)}"))
        patterns.append(re.compile(rf"\.{re.escape(stem)}\.\d+\.{re.escape(suffix)}\..*\.tmp"))
    found = []
    for path in directory.iterdir():
        for pattern in patterns:
            match = pattern.fullmatch(path.name)
            if match:
                found.append((path, int(match.group(1)) if match.groups() else -1))
    return found


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable, not only the file contents."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

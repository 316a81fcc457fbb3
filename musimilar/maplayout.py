"""A 2-D layout of a library's embeddings for a map: PCA in numpy, or UMAP from the optional `map` extra.

A layout is computed once per model and set of embedded tracks, and cached in the home (`HOME/map/`), keyed by
the model fingerprint and a digest of the embedded track ids and versions: new embeddings or a new model give a
new key, so a stale layout is never shown.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musimilar.embeddings import EmbeddingTable
from musimilar.errors import MusimilarError
from musimilar.home import atomic_write_bytes

METHODS = ("pca", "umap")
MAP_DIRNAME = "map"
KEPT_LAYOUTS = 4  # cached layouts kept per method; older ones are removed when a new one is written
UMAP_NEIGHBOURS = 15
UMAP_SEED = 0

CAPTIONS = {
    "pca": (
        "PCA: x and y are the two directions along which the track embeddings vary most ({x:.0%} and {y:.0%} of "
        "their variance). Points close on the map often sound alike, but the map flattens many dimensions into "
        "two: click a track for its true nearest neighbours."
    ),
    "umap": (
        "UMAP: a layout that keeps each track near its nearest neighbours in sound. The axes have no meaning, and "
        "the distances between far-apart groups mean little: click a track for its true nearest neighbours."
    ),
}


@dataclass(frozen=True, eq=False)
class MapLayout:
    """Point i is track `track_ids[i]` at `xy[i]`; `variance` is the share of variance of each axis (PCA only)."""

    method: str
    track_ids: np.ndarray  # [N] int64
    xy: np.ndarray  # [N, 2] float32
    variance: tuple[float, float] | None
    key: str

    @property
    def caption(self) -> str:
        x, y = self.variance or (0.0, 0.0)
        return CAPTIONS[self.method].format(x=x, y=y)


def layout_key(table: EmbeddingTable, method: str) -> str:
    """Names one layout: the method, the model and which track versions were embedded."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(table.track_ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(table.versions, dtype=np.int64).tobytes())
    return f"{method}-{table.model_fingerprint[:16]}-{digest.hexdigest()}"


def library_layout(home_root: Path, table: EmbeddingTable, method: str = "pca") -> MapLayout:
    """The cached layout of `table`, computed and stored in the home first if there is none for it yet."""
    if method not in METHODS:
        raise MusimilarError(f"{method}: unknown map method (choose {' or '.join(METHODS)})")
    key = layout_key(table, method)
    path = home_root / MAP_DIRNAME / f"{key}.npz"
    cached = _read_layout(path, method, key)
    if cached is not None:
        return cached
    compute: Callable[[np.ndarray], tuple[np.ndarray, tuple[float, float] | None]] = (
        pca_layout if method == "pca" else umap_layout
    )
    xy, variance = compute(np.asarray(table.vectors, dtype=np.float32))
    layout = MapLayout(method, np.asarray(table.track_ids, dtype=np.int64), xy, variance, key)
    _write_layout(path, layout)
    _remove_old_layouts(path.parent, method, keep=path)
    return layout


def pca_layout(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The projection of `vectors` ([N, D]) on their two principal axes ([N, 2]) and each axis' share of variance."""
    if len(vectors) == 0:
        return np.zeros((0, 2), dtype=np.float32), (0.0, 0.0)
    centred = vectors - vectors.mean(axis=0, keepdims=True)  # [N, D]
    covariance = (centred.T @ centred).astype(np.float64) / max(1, len(vectors) - 1)  # [D, D]: cheap for any N
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    axes = eigenvectors[:, ::-1][:, :2]  # [D, 2]
    # eigh's sign is arbitrary: fix it so the same embeddings always give the same picture.
    axes = axes * np.where(axes[np.abs(axes).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    total = float(eigenvalues.sum()) or 1.0
    top = eigenvalues[::-1][:2]
    variance = (float(top[0]) / total, float(top[1]) / total if len(top) > 1 else 0.0)
    xy = (centred @ axes.astype(np.float32)).astype(np.float32)  # [N, 2]
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return xy, variance


def umap_layout(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
    """UMAP of `vectors` with cosine distance ([N, 2]); needs the optional extra `musimilar[map]`."""
    try:
        import umap  # noqa: PLC0415 - heavy and optional
    except ImportError:
        raise MusimilarError("the UMAP map needs the optional extra: pip install 'musimilar[map]'") from None
    neighbours = max(2, min(UMAP_NEIGHBOURS, len(vectors) - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, metric="cosine", random_state=UMAP_SEED)
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32), None


def _read_layout(path: Path, method: str, key: str) -> MapLayout | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            variance = tuple(float(v) for v in stored["variance"]) if "variance" in stored.files else None
            return MapLayout(method, stored["track_ids"], stored["xy"], variance, key)  # type: ignore[arg-type]
    except (OSError, KeyError, ValueError):
        return None  # absent or damaged: computed again


def _write_layout(path: Path, layout: MapLayout) -> None:
    arrays = {"track_ids": layout.track_ids, "xy": layout.xy}
    if layout.variance is not None:
        arrays["variance"] = np.asarray(layout.variance, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a read-only home still gets its map, computed each time


def _remove_old_layouts(directory: Path, method: str, keep: Path) -> None:
    layouts = sorted(directory.glob(f"{method}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in layouts if p != keep][KEPT_LAYOUTS - 1 :]:
        old.unlink(missing_ok=True)

"""Retrieval post-processing fitted to one library's embeddings, applied alike to its tracks and to any query.

Two corrections, each optional (`[retrieval]` settings):
- centring and PCA whitening with shrinkage: the mean is removed, the vectors are turned onto their principal
  axes (the first `whiten_dim`), and each axis is divided by the square root of its shrunk variance
  `(1 - s) * variance + s * mean variance`. s = 0 whitens fully, s = 1 only centres and rotates. Dominant axes
  shared by all tracks (loudness, recording era) stop drowning the rest.
- hubness reduction by CSLS (Lample et al. 2018; the local scaling of Schnitzer et al. 2012 in spirit): a track
  whose mean similarity to its `csls_k` nearest neighbours is high (a hub, near everyone) is ranked lower,
  `2 cos(q, t) - r_t`; r_t is computed once per embeddings and stored beside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK_ROWS = 1024  # rows of the similarity matrix computed at once
MIN_TRACKS_TO_WHITEN = 50  # fewer tracks say too little about the axes to whiten them (centring included)


@dataclass
class PostProcess:
    """A fitted transform: `apply` maps raw unit embeddings to the post-processed unit vectors searched."""

    mean: np.ndarray  # [D] float32
    projection: np.ndarray  # [D, d] float32: principal axes, each over the square root of its shrunk variance
    radius: np.ndarray | None  # [N] float32, CSLS neighbourhood radius of each row of the table; None: no CSLS
    shrinkage: float
    csls_k: int

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """[N, D] or [D] raw vectors → unit post-processed vectors [N, d] or [d]."""
        single = np.ndim(vectors) == 1
        rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        out = unit_rows((rows - self.mean) @ self.projection)
        return out[0] if single else out

    def describe(self) -> dict[str, Any]:
        return {"whiten_dim": self.dim, "shrinkage": self.shrinkage, "csls_k": self.csls_k}


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def fit_whitening(vectors: np.ndarray, dim: int | None, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], projection [D, d]) of centring + PCA whitening with shrinkage; d = min(dim, rank) (None: D)."""
    data = np.asarray(vectors, dtype=np.float64)
    mean = data.mean(axis=0)
    _, singular, axes = np.linalg.svd(data - mean, full_matrices=False)  # axes [min(N, D), D]
    variance = singular**2 / max(1, len(data) - 1)
    keep = min(dim or len(variance), len(variance), int((variance > variance.max() * 1e-9).sum()))
    shrunk = (1 - shrinkage) * variance[:keep] + shrinkage * variance.mean()
    projection = axes[:keep].T / np.sqrt(shrunk)  # [D, d]
    return mean.astype(np.float32), projection.astype(np.float32)


def similarity_blocks(queries: np.ndarray, keys: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, cosine similarities [b, N_keys]) of unit rows, BLOCK_ROWS query rows at a time."""
    for start in range(0, len(queries), BLOCK_ROWS):
        rows = slice(start, min(start + BLOCK_ROWS, len(queries)))
        yield rows, queries[rows] @ keys.T


def neighbourhood_radius(vectors: np.ndarray, k: int) -> np.ndarray:
    """[N] mean cosine similarity of each unit row to its k nearest other rows (k capped at N - 1)."""
    k = min(k, len(vectors) - 1)
    radius = np.zeros(len(vectors), dtype=np.float32)
    if k < 1:
        return radius
    for rows, sims in similarity_blocks(vectors, vectors):
        sims[np.arange(len(sims)), np.arange(rows.start, rows.stop)] = -np.inf  # not its own neighbour
        radius[rows] = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
    return radius


def csls(similarities: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """CSLS ranking scores from cosine similarities [..., N] to the N tracks of `radius` [N]: 2 cos - r_t.

    The query's own radius is the same for every candidate and is left out: it would not change the order.
    """
    return 2 * similarities - radius


def fit(vectors: np.ndarray, whiten: bool, dim: int | None, shrinkage: float, csls_k: int) -> PostProcess | None:
    """The post-processing of a table's unit vectors [N, D]; None when neither correction is asked for."""
    if not whiten and csls_k <= 0:
        return None
    if whiten and len(vectors) >= MIN_TRACKS_TO_WHITEN:
        mean, projection = fit_whitening(vectors, dim, shrinkage)
    else:  # the identity: CSLS alone
        mean, projection = np.zeros(vectors.shape[1], np.float32), np.eye(vectors.shape[1], dtype=np.float32)
    post = PostProcess(mean, projection, None, shrinkage if whiten else 1.0, csls_k)
    if csls_k > 0:
        post.radius = neighbourhood_radius(post.apply(vectors), csls_k)
    return post


def fingerprint(post: PostProcess | None) -> str | None:
    """Names the transform the vectors went through (an index records it, and is stale when it changes)."""
    if post is None:
        return None
    import hashlib

    digest = hashlib.sha1(post.mean.tobytes() + post.projection.tobytes())
    return digest.hexdigest()[:16]


def csls_neighbours(
    vectors: np.ndarray, radius: np.ndarray, k: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices [N, k], cosine similarities [N, k]) of each row's k best other rows by CSLS; rows of the same
    `groups` value are left out like the row itself."""
    indices = np.empty((len(vectors), k), dtype=np.int64)
    sims_out = np.empty((len(vectors), k), dtype=np.float32)
    for rows, sims in similarity_blocks(vectors, vectors):
        scores = csls(sims, radius)
        own = np.arange(rows.start, rows.stop)
        scores[np.arange(len(sims)), own] = -np.inf
        if groups is not None:
            query_groups = groups[own][:, None]  # [b, 1]; -1: unknown, never filtered (metrics.UNKNOWN_GROUP)
            scores[(query_groups == groups[None, :]) & (query_groups != -1)] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        indices[rows], sims_out[rows] = top, np.take_along_axis(sims, top, axis=1)
    return indices, sims_out


def hubness(indices: np.ndarray, count: int) -> dict[str, float]:
    """How much a few tracks are everyone's neighbour, from each track's top-k list ([N, k] indices):
    `top_hub_share`, the share of tracks whose list holds the most frequent neighbour, and the skewness of the
    k-occurrence (how many lists each track is in; 0 for a symmetric spread, large with hubs)."""
    valid = indices[indices >= 0]
    occurrences = np.bincount(valid, minlength=count).astype(np.float64)
    spread = occurrences.std()
    skew = float(((occurrences - occurrences.mean()) ** 3).mean() / spread**3) if spread > 0 else 0.0
    return {"top_hub_share": float(occurrences.max() / max(1, len(indices))), "k_occurrence_skewness": skew}

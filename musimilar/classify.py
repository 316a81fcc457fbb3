"""`classify`: the likely labels of a track or file, from its labelled neighbours or a head in the model file.

With no head, a query's k nearest labelled tracks vote, each with its cosine similarity (metrics.weighted_vote); a
label's score is its share of the vote. `train_head` fits a linear classifier (metrics.fit_linear_classifier) on
the stored embeddings of the labelled tracks and keeps it in the model file under `heads[by]`; from then on that
head answers for `by`, and a label's score is its probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musimilar import metrics
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.labels import default_by, known_keys, label_of
from musimilar.ready import ReadyHome

TOP_LABELS = 3  # labels listed per query


@dataclass
class ClassifyResult:
    query: str
    by: str
    method: str  # "vote" (nearest labelled tracks) or "head" (the model file's classifier)
    labels: list[tuple[str, float]] = field(default_factory=list)  # (label, score in [0, 1]), best first
    error: str | None = None  # set instead of raising when classify(..., keep_going=True) meets a bad query

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "by": self.by,
            "method": self.method,
            "labels": [{"label": label, "score": round(score, 6)} for label, score in self.labels],
            "error": self.error,
        }


def classify(
    ready: ReadyHome,
    queries: list[str],
    by: str | None = None,
    k: int = 10,
    top: int = TOP_LABELS,
    use_head: bool = True,
    keep_going: bool = False,
) -> list[ClassifyResult]:
    """The `top` likeliest labels of each query (an audio file, in the library or not, or a catalog track id).

    `by` defaults as in evaluate (label, else genre, else folder). The model file's head for `by` answers when
    there is one and `use_head`; else the weighted vote of the k nearest labelled tracks (the query's own track
    and its exact duplicates never vote). With `keep_going`, a query that fails gets a result with its error.
    """
    if k < 1 or top < 1:
        raise MusimilarError(f"k and top must be at least 1, got k={k}, top={top}")
    tracks = {track.id: track for track in ready.catalog.tracks("ok")}
    by = by or default_by(tracks.values())
    head = ready.model.heads.get(by) if use_head else None
    voters = None if head is not None else _voters(ready.table, tracks, by)
    results = []
    for query in queries:
        result = ClassifyResult(query, by, "vote" if head is None else "head")
        try:
            found = ready.query_vector(query)
            result.labels = (
                _head_labels(head, found.raw if found.raw is not None else found.vector)
                if head is not None
                else _vote_labels(voters, found.vector, found.exclude, k)
            )[:top]
        except MusimilarError as error:
            if not keep_going:
                raise
            result.error = error.message
        results.append(result)
    return results


@dataclass
class _Voters:
    """The labelled tracks that vote: ids [N], unit vectors [N, D], label codes [N] and label names [C]."""

    track_ids: np.ndarray
    vectors: np.ndarray
    codes: np.ndarray
    names: np.ndarray


def _voters(table: Any, tracks: dict[int, Any], by: str) -> _Voters:
    labels = {
        int(track_id): label_of(tracks[int(track_id)], by) for track_id in table.track_ids if int(track_id) in tracks
    }
    ids = np.array([track_id for track_id, label in labels.items() if label], dtype=np.int64)
    if len(ids) == 0:
        known = ", ".join(known_keys(tracks.values()))
        raise NotReadyError(
            f"no embedded track has a '{by}' label (labels known: {known}; import some with "
            "`musimilar labels import FILE`)"
        )
    codes, names = metrics.encode_labels([labels[int(track_id)] for track_id in ids])
    return _Voters(ids, np.asarray(table.vectors[table.rows_of(ids)], dtype=np.float32), codes, names)


def _vote_labels(voters: _Voters, vector: np.ndarray, exclude: set[int], k: int) -> list[tuple[str, float]]:
    """Labels by their share of the k nearest voters' cosine-weighted vote, best first (ties by name)."""
    sims = voters.vectors @ np.asarray(vector, dtype=np.float32)  # [N]
    sims[np.isin(voters.track_ids, list(exclude))] = -np.inf
    count = min(k, int(np.isfinite(sims).sum()))
    if count == 0:
        return []
    nearest = np.argsort(-sims, kind="stable")[:count]
    scores = metrics.weighted_vote(voters.codes[nearest][None, :], sims[nearest][None, :], len(voters.names))[0]
    total = scores.sum()
    order = [code for code in np.lexsort((voters.names, -scores)) if scores[code] > 0]
    return [(str(voters.names[code]), float(scores[code] / total)) for code in order]


def _head_labels(head: dict[str, Any], vector: np.ndarray) -> list[tuple[str, float]]:
    """Labels by the head's probability, best first."""
    weight, bias = head["weight"].numpy(), head["bias"].numpy()
    probabilities = metrics.predict_linear(weight, bias, np.asarray(vector)[None, :])[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(str(head["labels"][code]), float(probabilities[code])) for code in order]


def train_head(ready: ReadyHome, by: str, l2: float = 1e-3) -> dict[str, Any]:
    """Fit a linear classifier for `by` on the stored embeddings of the labelled tracks and keep it in the home's
    current model file (and its archived copy). The encoder, and so the model's fingerprint, stay as they were."""
    import torch

    from musimilar.checkpoint import add_head

    home = ready.home
    # On the model's own vectors: the retrieval post-processing is refitted whenever the library is re-embedded,
    # while the head stays in the model file.
    voters = _voters(ready.raw_table, {t.id: t for t in ready.catalog.tracks("ok")}, by)
    if len(voters.names) < 2:
        raise NotReadyError(f"a head for '{by}' needs two labels or more; the tracks have one: {voters.names[0]}")
    weight, bias = metrics.fit_linear_classifier(voters.vectors, voters.codes, len(voters.names), l2)
    accuracy = float((metrics.predict_linear(weight, bias, voters.vectors).argmax(axis=1) == voters.codes).mean())
    head = {
        "labels": [str(name) for name in voters.names],
        "weight": torch.from_numpy(weight),
        "bias": torch.from_numpy(bias),
        "tracks": len(voters.codes),
        "l2": l2,
    }
    fingerprint = ready.model.fingerprint
    for path in (home.current_model_path, home.models_dir / f"model-{fingerprint}.pt"):
        if path.is_file():
            add_head(path, by, head)
    return {
        "by": by,
        "labels": len(voters.names),
        "tracks": len(voters.codes),
        "training_accuracy": accuracy,
        "model": str(home.current_model_path),
        "fingerprint": fingerprint,
    }

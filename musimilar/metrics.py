"""Label metrics for embeddings: neighbours, precision@k, mAP, k-NN vote, linear probe, segment retrieval, baseline.

Pure numpy on arrays in memory. Similarity is always cosine. It is computed one block of query rows at a time,
so 10,000 tracks never need the full [N, N] matrix at once. Labels may be any values numpy can sort (strings,
ints); group ids are integers, with UNKNOWN_GROUP for a track whose album or artist is not known.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from musimilar.linear import fit_linear_classifier, predict_linear
from musimilar.postprocess import csls, neighbourhood_radius

UNKNOWN_GROUP = -1  # a track with an unknown album/artist is never filtered out
_TINY = 1e-12  # guards the norm of an all-zero vector and the spread of a constant feature
_VOTE_TIE = 1e-9  # vote scores closer than this count as a tie (they are sums of at most k cosines)


def encode_labels(labels: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label values → (codes [N] int64 in 0..C-1, names [C] sorted); code c stands for names[c]."""
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), names


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 [N, D]; an all-zero row stays zero (cosine 0 with everything)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or not np.isfinite(matrix).all():
        raise ValueError(f"expected a finite [tracks, dims] matrix, got shape {matrix.shape}")
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), _TINY)


def _per_track(values: Sequence | np.ndarray | None, tracks: int, what: str) -> np.ndarray | None:
    """values as an array, checked to hold one entry per track (None passes through)."""
    if values is None:
        return None
    array = np.asarray(values)
    if array.shape[:1] != (tracks,):
        raise ValueError(f"{what}: expected {tracks} entries, one per track, got shape {array.shape}")
    return array


def _cosine_blocks(queries: np.ndarray, keys: np.ndarray, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (query row numbers [b], cosine similarities [b, N_keys]) for unit rows, block rows at a time."""
    for start in range(0, len(queries), block):
        rows = np.arange(start, min(start + block, len(queries)))
        yield rows, queries[rows] @ keys.T


def _exclude(sims: np.ndarray, rows: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Set each query's own column, and columns of its group (when known), to -inf in place; returns sims."""
    sims[np.arange(len(rows)), rows] = -np.inf
    if groups is not None:
        query_groups = groups[rows, None]  # [b, 1]
        sims[(query_groups == groups[None, :]) & (query_groups != UNKNOWN_GROUP)] = -np.inf
    return sims


def cosine_neighbours(
    vectors: np.ndarray, k: int, exclude_groups: np.ndarray | None = None, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k most cosine-similar other rows, best first: (indices [N, k] int64, sims [N, k] float32).

    Rows sharing the query's id in exclude_groups (other than UNKNOWN_GROUP) are skipped. Where fewer than k rows
    remain, the missing places hold index -1 and similarity nan. Equal similarities are listed by index; which
    of several rows tied at the k-th place make the cut is not specified.
    """
    unit = _unit_rows(vectors)
    if not 1 <= k < len(unit):
        raise ValueError(f"k must be between 1 and {len(unit) - 1} for {len(unit)} tracks, got {k}")
    groups = _per_track(exclude_groups, len(unit), "exclude_groups")
    indices = np.empty((len(unit), k), dtype=np.int64)
    sims = np.empty((len(unit), k), dtype=np.float32)
    for rows, block_sims in _cosine_blocks(unit, unit, block):
        _exclude(block_sims, rows, groups)
        top = np.argpartition(block_sims, len(unit) - k, axis=1)[:, -k:]  # [b, k], unordered
        top_sims = np.take_along_axis(block_sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)  # by similarity, then by index
        top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
        missing = np.isneginf(top_sims)
        indices[rows] = np.where(missing, -1, top)
        sims[rows] = np.where(missing, np.nan, top_sims)
    return indices, sims


def _neighbour_codes(codes: np.ndarray, neighbour_indices: np.ndarray) -> np.ndarray:
    """Label code of each neighbour [N, k]; -1 where the neighbour is missing."""
    indices = np.asarray(neighbour_indices)
    if indices.ndim != 2 or len(indices) != len(codes):
        raise ValueError(f"expected neighbour indices [{len(codes)}, k], got shape {indices.shape}")
    return np.where(indices >= 0, codes[np.maximum(indices, 0)], -1)


def precision_at_k(labels: Sequence | np.ndarray, neighbour_indices: np.ndarray) -> float:
    """Mean over queries of the share of their k neighbours with the query's label (a missing neighbour misses)."""
    codes, _ = encode_labels(labels)
    return float((_neighbour_codes(codes, neighbour_indices) == codes[:, None]).mean())


def _candidates(codes: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (tracks it may be matched with, those of them with its label); its own group is left out."""
    same_label = np.bincount(codes)[codes] - 1  # [N] other tracks with the query's label
    candidates = np.full(len(codes), len(codes) - 1)
    if groups is not None:
        known = groups != UNKNOWN_GROUP
        _, group_codes, group_sizes = np.unique(groups, return_inverse=True, return_counts=True)
        _, pair_codes, pair_sizes = np.unique(
            np.stack([groups, codes], 1), axis=0, return_inverse=True, return_counts=True
        )
        candidates -= np.where(known, group_sizes[group_codes.reshape(-1)] - 1, 0)
        same_label -= np.where(known, pair_sizes[pair_codes.reshape(-1)] - 1, 0)
    return candidates, same_label


def chance_precision(labels: Sequence | np.ndarray, k: int, exclude_groups: np.ndarray | None = None) -> float:
    """Expected precision@k of k neighbours drawn at random from each query's candidates (others, not same group)."""
    codes, _ = encode_labels(labels)
    candidates, same_label = _candidates(codes, _per_track(exclude_groups, len(codes), "exclude_groups"))
    # With fewer than k candidates, the empty places count as misses, as in precision_at_k.
    drawn = np.minimum(candidates, k)
    expected_hits = np.divide(same_label * drawn, candidates, out=np.zeros(len(codes)), where=candidates > 0)
    return float((expected_hits / k).mean())


def _average_precisions(sims: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Average precision of each row's full ranking [b]; -inf columns are not ranked; nan where nothing is relevant.

    Equal similarities form one threshold (as in scikit-learn's average_precision_score): a relevant item scores
    the share of relevant items among all items at least as similar as itself, so the order within ties is moot.
    """
    columns = sims.shape[1]
    order = np.argsort(sims, axis=1)  # [b, N] ascending: best last, -inf (not ranked) first
    ranked = np.take_along_axis(sims, order, axis=1)
    hits = np.take_along_axis(relevant, order, axis=1) & np.isfinite(ranked)
    run_first = np.ones(ranked.shape, dtype=bool)
    run_first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    run_starts = np.where(run_first, np.arange(columns, dtype=np.int32), 0)
    run_starts = np.maximum.accumulate(run_starts, axis=1)  # [b, N] first place of each place's run of ties
    rows, places = np.nonzero(hits)  # row-major: flat positions rows * N + places come sorted
    starts = run_starts[rows, places]
    hit_counts = np.bincount(rows, minlength=len(sims))
    hits_to_row_end = np.cumsum(hit_counts)[rows]
    hits_from_start = hits_to_row_end - np.searchsorted(rows * columns + places, rows * columns + starts)
    precisions = hits_from_start / (columns - starts)  # everything from a run's start on is at least as similar
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(rows, weights=precisions, minlength=len(sims)) / hit_counts


def mean_average_precision(
    vectors: np.ndarray, labels: Sequence | np.ndarray, exclude_groups: np.ndarray | None = None, block: int = 512
) -> float:
    """mAP of each track's ranking of all other tracks by cosine, relevant = same label.

    Tracks of the query's group are left out of its ranking. Queries with no relevant track are skipped;
    nan when no query has one.
    """
    unit = _unit_rows(vectors)
    codes, _ = encode_labels(labels)
    _per_track(codes, len(unit), "labels")
    groups = _per_track(exclude_groups, len(unit), "exclude_groups")
    precisions = np.concatenate(
        [
            _average_precisions(_exclude(sims, rows, groups), codes[rows, None] == codes[None, :])
            for rows, sims in _cosine_blocks(unit, unit, block)
        ]
    )
    answerable = ~np.isnan(precisions)
    return float(precisions[answerable].mean()) if answerable.any() else float("nan")


def chance_average_precision(labels: Sequence | np.ndarray, exclude_groups: np.ndarray | None = None) -> float:
    """Expected mAP of rankings drawn at random, over the queries mAP counts (those with a relevant candidate).

    A query with M candidates, R of them relevant, expects AP = (H_M + (R - 1) / (M - 1) * (M - H_M)) / M, where
    H_M = 1 + 1/2 + ... + 1/M: a relevant item at place n has an expected precision of (1 + (n - 1)(R - 1) /
    (M - 1)) / n, and any place holds one with probability R / M. Candidates exclude the query's group.
    """
    codes, _ = encode_labels(labels)
    candidates, relevant = _candidates(codes, _per_track(exclude_groups, len(codes), "exclude_groups"))
    answerable = relevant > 0
    if not answerable.any():
        return float("nan")
    m, r = candidates[answerable].astype(np.float64), relevant[answerable].astype(np.float64)
    harmonic = np.cumsum(1.0 / np.arange(1, m.max() + 1))[m.astype(np.int64) - 1]  # H_M of each query
    spread = np.divide(r - 1, m - 1, out=np.zeros_like(m), where=m > 1)
    return float(((harmonic + spread * (m - harmonic)) / m).mean())


def weighted_vote(neighbour_labels: np.ndarray, sims: np.ndarray, n_labels: int) -> np.ndarray:
    """Vote scores [Q, n_labels]: each neighbour adds its cosine (negatives count 0) to its label code (-1 skipped)."""
    neighbour_labels = np.asarray(neighbour_labels)
    if neighbour_labels.size and neighbour_labels.max() >= n_labels:
        raise ValueError(f"label code {neighbour_labels.max()} is out of range for {n_labels} labels")
    present = neighbour_labels >= 0
    weights = np.where(present, np.maximum(np.nan_to_num(sims, nan=0.0), 0.0), 0.0)
    slots = np.arange(len(neighbour_labels))[:, None] * n_labels + np.maximum(neighbour_labels, 0)
    scores = np.bincount(slots.ravel(), weights=weights.ravel(), minlength=len(neighbour_labels) * n_labels)
    return scores.reshape(len(neighbour_labels), n_labels)


def vote_winner(scores: np.ndarray, neighbour_labels: np.ndarray) -> np.ndarray:
    """Winning label code per query [Q]; among tied labels the one of the nearest neighbour wins; -1 if none."""
    neighbour_labels = np.asarray(neighbour_labels)
    tied = scores >= scores.max(axis=1, keepdims=True) - _VOTE_TIE  # [Q, n_labels]
    tied_neighbours = np.take_along_axis(tied, np.maximum(neighbour_labels, 0), axis=1) & (neighbour_labels >= 0)
    nearest_tied = tied_neighbours.argmax(axis=1)  # neighbours come best first
    winners = np.take_along_axis(neighbour_labels, nearest_tied[:, None], axis=1)[:, 0]
    return np.where(tied_neighbours.any(axis=1), winners, -1)


def knn_accuracy(labels: Sequence | np.ndarray, neighbour_indices: np.ndarray, neighbour_sims: np.ndarray) -> float:
    """Leave-one-out k-NN accuracy: each track's label predicted by the weighted vote of its neighbours."""
    codes, names = encode_labels(labels)
    neighbour_codes = _neighbour_codes(codes, neighbour_indices)
    predicted = vote_winner(weighted_vote(neighbour_codes, neighbour_sims, len(names)), neighbour_codes)
    return float((predicted == codes).mean())


def stratified_split(
    labels: Sequence | np.ndarray, test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) track indices: round(n * test_fraction) of each label's n tracks are held out,
    but at least one always stays in training, so a label with one track is never tested."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    codes, _ = encode_labels(labels)
    order = np.lexsort((np.random.default_rng(seed).random(len(codes)), codes))  # by label, shuffled within
    counts = np.bincount(codes)
    place_in_label = np.empty(len(codes), dtype=np.int64)
    place_in_label[order] = np.arange(len(codes)) - (np.cumsum(counts) - counts)[codes[order]]
    held_out = np.minimum(np.rint(counts * test_fraction), counts - 1)
    test = place_in_label < held_out[codes]
    return np.flatnonzero(~test), np.flatnonzero(test)


def linear_probe_accuracy(
    vectors: np.ndarray,
    labels: Sequence | np.ndarray,
    test_fraction: float = 0.3,
    seed: int = 0,
    l2: float = 1e-3,
    max_iterations: int = 300,
) -> float:
    """Accuracy on held-out tracks of a linear classifier fit on a seeded stratified split; nan if none held out."""
    features = np.asarray(vectors, dtype=np.float32)
    codes, names = encode_labels(labels)
    _per_track(codes, len(features), "labels")
    train, test = stratified_split(codes, test_fraction, seed)
    if len(test) == 0:
        return float("nan")
    weights, bias = fit_linear_classifier(features[train], codes[train], len(names), l2, max_iterations)
    predicted = predict_linear(weights, bias, features[test]).argmax(axis=1)
    return float((predicted == codes[test]).mean())


def segment_retrieval(
    first: np.ndarray,
    second: np.ndarray,
    ks: Sequence[int] = (1, 10),
    block: int = 2048,
    csls_k: int = 0,
) -> dict[str, float]:
    """Share of tracks whose second crop ranks in the top k among all second crops by cosine to their first crop
    (by CSLS over the second crops' `csls_k` nearest, as `recommend` ranks a library, when csls_k > 0).

    Keys are "top1", "top10", ... for each k in ks. A tie with another track's crop counts against the track.
    """
    queries, keys = _unit_rows(first), _unit_rows(second)
    if queries.shape != keys.shape:
        raise ValueError(f"first and second must have the same shape, got {queries.shape} and {keys.shape}")
    radius = neighbourhood_radius(keys, csls_k) if csls_k > 0 else None
    ranks = np.empty(len(queries), dtype=np.int64)  # 0 = the track's own second crop comes first
    for rows, sims in _cosine_blocks(queries, keys, block):
        sims = sims if radius is None else csls(sims, radius)
        own = sims[np.arange(len(rows)), rows][:, None]  # [b, 1]
        ranks[rows] = (sims >= own).sum(axis=1) - 1
    return {f"top{k}": float((ranks < k).mean()) for k in ks}


def logmel_statistics(logmel: np.ndarray) -> np.ndarray:
    """No-training baseline features of one track: log-mel [n_mels, T] dB → per-band means, then stds [2*n_mels]."""
    bands = np.asarray(logmel, dtype=np.float64)
    if bands.ndim != 2 or bands.shape[1] == 0:
        raise ValueError(f"expected a log-mel [n_mels, frames] with frames > 0, got shape {bands.shape}")
    return np.concatenate([bands.mean(axis=1), bands.std(axis=1)]).astype(np.float32)


def standardise(features: np.ndarray) -> np.ndarray:
    """z-score each dimension across tracks [N, D] (constant ones become 0), then scale rows to unit length."""
    matrix = np.asarray(features, dtype=np.float64)
    spread = matrix.std(axis=0)
    z = (matrix - matrix.mean(axis=0)) / np.where(spread < _TINY, 1.0, spread)
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), _TINY)).astype(np.float32)


def label_counts(labels: Sequence | np.ndarray) -> dict:
    """{label: number of tracks}, most common first (equal counts in label order)."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return dict(zip(names[order].tolist(), counts[order].tolist()))


def few_examples_labels(labels: Sequence | np.ndarray, minimum: int = 5) -> list:
    """Labels with fewer than minimum tracks, in label order: their figures rest on too few examples."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    return names[counts < minimum].tolist()


def shuffled_labels(labels: Sequence | np.ndarray, seed: int) -> np.ndarray:
    """The same labels dealt to the tracks in a seeded random order: the control that should score at chance."""
    return np.random.default_rng(seed).permutation(np.asarray(labels))


def summarise(
    vectors: np.ndarray,
    labels: Sequence | np.ndarray,
    k: int = 10,
    exclude_groups: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, float | int]:
    """All label metrics in one flat dict. k is capped at tracks - 1; the "k" key says which k was used."""
    codes, names = encode_labels(labels)
    if len(codes) < 2:
        raise ValueError(f"need at least two labelled tracks, got {len(codes)}")
    k = min(k, len(codes) - 1)
    indices, sims = cosine_neighbours(vectors, k, exclude_groups)
    return {
        "tracks": len(codes),
        "labels": len(names),
        "k": k,
        "precision_at_k": precision_at_k(codes, indices),
        "chance_precision": chance_precision(codes, k, exclude_groups),
        "map": mean_average_precision(vectors, codes, exclude_groups),
        "knn_accuracy": knn_accuracy(codes, indices, sims),
        "linear_probe_accuracy": linear_probe_accuracy(vectors, codes, seed=seed),
    }

"""Label metrics against slow loop references, and on data whose answer is known (clustered, random, shuffled)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from musimilar import metrics


def random_tracks(n=40, dims=8, n_labels=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dims)).astype(np.float32), rng.integers(0, n_labels, n)


def clustered_tracks(n_labels=4, per_label=10, dims=16, seed=0):
    """Each label's tracks sit close to its own random direction."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_labels, dims)) * 10
    labels = np.repeat(np.arange(n_labels), per_label)
    return (centres[labels] + rng.standard_normal((len(labels), dims)) * 0.1).astype(np.float32), labels


def reference_cosines(vectors):
    rows = [np.asarray(row, dtype=np.float64) for row in vectors]
    return [[float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for b in rows] for a in rows]


def reference_candidates(n, i, groups):
    return [j for j in range(n) if j != i and (groups is None or groups[i] == -1 or groups[j] != groups[i])]


def reference_neighbours(vectors, k, groups=None):
    cosines = reference_cosines(vectors)
    result = []
    for i in range(len(vectors)):
        ranked = sorted(reference_candidates(len(vectors), i, groups), key=lambda j: (-cosines[i][j], j))[:k]
        result.append([(j, cosines[i][j]) for j in ranked] + [(-1, np.nan)] * (k - len(ranked)))
    return result


def reference_map(cosines, labels, groups=None):
    """Threshold AP: each relevant item scores (#relevant with cos >= its cos) / (#ranked with cos >= its cos)."""
    precisions = []
    for i in range(len(labels)):
        ranked = reference_candidates(len(labels), i, groups)
        relevant = [j for j in ranked if labels[j] == labels[i]]
        if not relevant:
            continue
        at_least = [
            (sum(cosines[i][r] >= cosines[i][j] for r in relevant), sum(cosines[i][r] >= cosines[i][j] for r in ranked))
            for j in relevant
        ]
        precisions.append(sum(hits / total for hits, total in at_least) / len(relevant))
    return sum(precisions) / len(precisions)


def reference_vote(neighbour_labels, sims):
    """Sum of positive cosines per label; a tie goes to the nearest neighbour's label."""
    scores = {}
    for label, sim in zip(neighbour_labels, sims):
        if label >= 0:
            scores[label] = scores.get(label, 0.0) + max(float(sim), 0.0)
    if not scores:
        return -1
    best = max(scores.values())
    return next(label for label in neighbour_labels if label >= 0 and scores[label] >= best - 1e-9)


def test_cosine_neighbours_matches_loop_reference():
    vectors, _ = random_tracks()
    indices, sims = metrics.cosine_neighbours(vectors, 5, block=7)
    for i, expected in enumerate(reference_neighbours(vectors, 5)):
        assert indices[i].tolist() == [j for j, _ in expected]
        np.testing.assert_allclose(sims[i], [s for _, s in expected], atol=1e-5)


def test_exclude_groups_removes_same_group_neighbours():
    vectors, _ = random_tracks(n=30)
    groups = np.repeat(np.arange(10), 3)
    groups[:3] = -1  # unknown: never filtered
    indices, sims = metrics.cosine_neighbours(vectors, 6, exclude_groups=groups, block=4)
    for i, expected in enumerate(reference_neighbours(vectors, 6, groups)):
        assert indices[i].tolist() == [j for j, _ in expected]
        np.testing.assert_allclose(sims[i], [s for _, s in expected], atol=1e-5)
    assert not ((groups[indices] == groups[:, None]) & (groups[:, None] != -1)).any()


def test_twins_are_neighbours_unless_their_group_is_known():
    vectors, _ = random_tracks(n=30)
    vectors[1], vectors[4] = vectors[0], vectors[3]
    groups = np.repeat(np.arange(10), 3)
    groups[:3] = -1
    indices, _ = metrics.cosine_neighbours(vectors, 3, exclude_groups=groups)
    assert indices[0, 0] == 1 and indices[1, 0] == 0
    assert 4 not in indices[3] and 3 not in indices[4]


def test_too_few_candidates_leave_missing_neighbours():
    vectors, _ = random_tracks(n=4)
    indices, sims = metrics.cosine_neighbours(vectors, 3, exclude_groups=np.array([0, 0, 0, 1]))
    assert indices[0].tolist()[1:] == [-1, -1] and indices[0, 0] == 3
    assert np.isnan(sims[0, 1:]).all()
    assert metrics.precision_at_k(np.array([5, 5, 5, 5]), indices) == pytest.approx((1 + 1 + 1 + 3) / 12)


def test_precision_at_k_matches_loop_reference():
    vectors, labels = random_tracks()
    indices, _ = metrics.cosine_neighbours(vectors, 4)
    expected = np.mean([np.mean([labels[j] == labels[i] for j in row]) for i, row in enumerate(indices)])
    assert metrics.precision_at_k(labels, indices) == pytest.approx(expected)


def test_string_labels_give_the_same_figures():
    vectors, labels = random_tracks()
    names = np.array(["rock", "jazz", "folk", "soul"])[labels]
    indices, sims = metrics.cosine_neighbours(vectors, 4)
    assert metrics.precision_at_k(names, indices) == metrics.precision_at_k(labels, indices)
    assert metrics.knn_accuracy(names, indices, sims) == metrics.knn_accuracy(labels, indices, sims)
    assert metrics.mean_average_precision(vectors, names) == metrics.mean_average_precision(vectors, labels)


@pytest.mark.parametrize("with_groups", [False, True])
def test_map_matches_loop_reference(with_groups):
    vectors, labels = random_tracks(n=50, n_labels=5)
    groups = np.arange(50) // 4 if with_groups else None
    got = metrics.mean_average_precision(vectors, labels, exclude_groups=groups, block=16)
    assert got == pytest.approx(reference_map(reference_cosines(vectors), labels, groups), abs=1e-9)


def test_map_with_tied_similarities_matches_threshold_reference():
    # Four ±1 entries per row give unit rows of ±0.5, so every cosine is an exact multiple of 1/4: many ties.
    rng = np.random.default_rng(3)
    vectors = np.zeros((40, 8), dtype=np.float32)
    for row in vectors:
        row[rng.choice(8, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    labels = rng.integers(0, 3, 40)
    exact = (vectors.astype(np.int64) @ vectors.astype(np.int64).T / 4).tolist()
    assert metrics.mean_average_precision(vectors, labels, block=8) == pytest.approx(reference_map(exact, labels))


def test_map_is_nan_when_no_query_has_a_relevant_track():
    vectors, _ = random_tracks(n=5)
    assert np.isnan(metrics.mean_average_precision(vectors, np.arange(5)))


def test_weighted_vote_and_knn_accuracy_match_loop_reference():
    vectors, labels = random_tracks(n=60, n_labels=3)
    indices, sims = metrics.cosine_neighbours(vectors, 7)
    neighbour_labels = labels[indices]
    scores = metrics.weighted_vote(neighbour_labels, sims, 3)
    for row_labels, row_sims, row_scores in zip(neighbour_labels, sims, scores):
        for label in range(3):
            expected = sum(max(float(s), 0.0) for lab, s in zip(row_labels, row_sims) if lab == label)
            assert row_scores[label] == pytest.approx(expected, abs=1e-6)
    predicted = [reference_vote(row_labels, row_sims) for row_labels, row_sims in zip(neighbour_labels, sims)]
    assert metrics.knn_accuracy(labels, indices, sims) == pytest.approx(np.mean(np.array(predicted) == labels))


def test_vote_tie_goes_to_nearest_neighbour_and_missing_neighbours_do_not_vote():
    neighbour_labels = np.array([[2, 1, 1, 2], [0, 1, -1, -1], [-1, -1, -1, -1]])
    sims = np.array([[0.5, 0.5, 0.5, 0.5], [-0.2, -0.1, np.nan, np.nan], [np.nan] * 4])
    scores = metrics.weighted_vote(neighbour_labels, sims, 3)
    np.testing.assert_allclose(scores, [[0, 1, 1], [0, 0, 0], [0, 0, 0]])
    assert metrics.vote_winner(scores, neighbour_labels).tolist() == [2, 0, -1]
    with pytest.raises(ValueError):
        metrics.weighted_vote(neighbour_labels, sims, 2)


def test_perfect_clusters_score_one_everywhere():
    vectors, labels = clustered_tracks()
    summary = metrics.summarise(vectors, labels, k=5)
    for key in ("precision_at_k", "map", "knn_accuracy", "linear_probe_accuracy"):
        assert summary[key] == pytest.approx(1.0), key
    assert summary["chance_precision"] == pytest.approx(9 / 39)
    assert (summary["tracks"], summary["labels"], summary["k"]) == (40, 4, 5)


def test_summarise_caps_k_and_keeps_stable_keys():
    vectors, labels = random_tracks(n=6, n_labels=2)
    summary = metrics.summarise(vectors, labels, k=10)
    assert summary["k"] == 5
    assert set(summary) == {
        "tracks",
        "labels",
        "k",
        "precision_at_k",
        "chance_precision",
        "map",
        "knn_accuracy",
        "linear_probe_accuracy",
    }


def test_random_embeddings_and_shuffled_labels_score_near_chance():
    vectors, labels = random_tracks(n=1500, dims=32, n_labels=5, seed=1)
    indices, _ = metrics.cosine_neighbours(vectors, 10)
    chance = metrics.chance_precision(labels, 10)
    assert metrics.precision_at_k(labels, indices) == pytest.approx(chance, abs=0.03)
    clustered, clustered_labels = clustered_tracks(n_labels=5, per_label=300, dims=16, seed=2)
    clustered_indices, _ = metrics.cosine_neighbours(clustered, 10)
    control = metrics.shuffled_labels(clustered_labels, seed=0)
    assert metrics.precision_at_k(clustered_labels, clustered_indices) == pytest.approx(1.0)
    assert metrics.precision_at_k(control, clustered_indices) == pytest.approx(chance, abs=0.03)


def test_chance_precision_matches_loop_reference():
    _, labels = random_tracks(n=30, n_labels=3, seed=4)
    groups = np.arange(30) % 7 - 1  # group -1 is unknown
    for k, group_ids in ((5, None), (5, groups), (28, groups)):
        expected = []
        for i in range(30):
            candidates = reference_candidates(30, i, group_ids)
            same = sum(labels[j] == labels[i] for j in candidates)
            expected.append(same / len(candidates) * min(k, len(candidates)) / k)
        assert metrics.chance_precision(labels, k, group_ids) == pytest.approx(np.mean(expected))


def test_stratified_split_keeps_label_shares_and_is_seeded():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    train, test = metrics.stratified_split(labels, 0.3, seed=7)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[test], minlength=4).tolist() == [3, 2, 1, 0]
    again = metrics.stratified_split(labels, 0.3, seed=7)
    assert train.tolist() == again[0].tolist() and test.tolist() == again[1].tolist()


def test_linear_classifier_matches_plain_gradient_descent():
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((30, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, -3.0]
    labels = rng.integers(0, 3, 30)
    l2 = 0.1
    weights, bias = metrics.fit_linear_classifier(vectors, labels, 3, l2=l2)
    z = (vectors - vectors.mean(0)) / vectors.std(0)
    w, b, targets = np.zeros((3, 3)), np.zeros(3), np.eye(3)[labels]
    for _ in range(5000):
        logits = z @ w + b
        probs = np.exp(logits - logits.max(1, keepdims=True))
        residual = (probs / probs.sum(1, keepdims=True) - targets) / len(z)
        w, b = w - 0.5 * (z.T @ residual + l2 * w), b - 0.5 * residual.sum(0)
    logits = z @ w + b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = metrics.predict_linear(weights, bias, vectors)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_linear_probe_is_deterministic_with_a_seed():
    vectors, labels = random_tracks(n=80, dims=6, n_labels=3, seed=6)
    first = metrics.linear_probe_accuracy(vectors, labels, seed=3)
    assert first == metrics.linear_probe_accuracy(vectors, labels, seed=3)
    assert 0.0 <= first <= 1.0


def test_segment_retrieval_matches_loop_reference():
    rng = np.random.default_rng(8)
    first, second = rng.standard_normal((2, 30, 4))
    second[3] = second[4]  # a tie with another track counts against the track
    cosines = [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in second] for a in first]
    ranks = [sum(c >= row[i] for c in row) - 1 for i, row in enumerate(cosines)]
    got = metrics.segment_retrieval(first, second, ks=(1, 3, 10), block=7)
    assert got == pytest.approx({f"top{k}": np.mean(np.array(ranks) < k) for k in (1, 3, 10)})


def test_segment_retrieval_by_csls_matches_loop_reference():
    rng = np.random.default_rng(10)
    first, second = rng.standard_normal((2, 40, 6))
    second += 0.8 * first
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    keys = [unit(b) for b in second]
    radius = [np.mean(sorted(a @ b for j, b in enumerate(keys) if j != i)[-5:]) for i, a in enumerate(keys)]
    scores = [[2 * (unit(a) @ b) - radius[j] for j, b in enumerate(keys)] for a in first]
    ranks = [sum(s >= row[i] for s in row) - 1 for i, row in enumerate(scores)]
    got = metrics.segment_retrieval(first, second, ks=(1, 3), block=9, csls_k=5)
    assert got == pytest.approx({f"top{k}": np.mean(np.array(ranks) < k) for k in (1, 3)})
    assert got != metrics.segment_retrieval(first, second, ks=(1, 3))  # the hubs' penalty changes some ranks


def test_segment_retrieval_identical_is_one_and_random_near_one_over_n():
    rng = np.random.default_rng(9)
    crops = rng.standard_normal((500, 16))
    assert metrics.segment_retrieval(crops, crops) == {"top1": 1.0, "top10": 1.0}
    chance = metrics.segment_retrieval(crops, rng.standard_normal((500, 16)))
    assert chance["top1"] < 0.02 and chance["top10"] < 0.06


def test_logmel_statistics_are_band_means_then_stds():
    logmel = np.array([[-80.0, -60.0, -40.0], [-20.0, -20.0, -20.0]])
    features = metrics.logmel_statistics(logmel)
    assert features.shape == (4,) and features.dtype == np.float32
    np.testing.assert_allclose(features, [-60.0, -20.0, np.sqrt(800 / 3), 0.0], rtol=1e-6)
    with pytest.raises(ValueError):
        metrics.logmel_statistics(np.zeros((64, 0)))


def test_standardise_z_scores_then_unit_rows_and_ignores_units():
    rng = np.random.default_rng(10)
    features = rng.standard_normal((20, 5))
    features[:, 4] = 3.0  # constant: carries nothing
    got = metrics.standardise(features)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got[:, 4], 0.0)
    z = (features[:, :4] - features[:, :4].mean(0)) / features[:, :4].std(0)
    np.testing.assert_allclose(got[:, :4], z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(metrics.standardise(features * 1000 - 7), got, atol=1e-5)


def test_label_helpers():
    labels = ["jazz", "rock", "rock", "folk", "rock", "jazz"]
    assert list(metrics.label_counts(labels).items()) == [("rock", 3), ("jazz", 2), ("folk", 1)]
    assert metrics.few_examples_labels(labels, minimum=3) == ["folk", "jazz"]
    shuffled = metrics.shuffled_labels(labels, seed=1)
    assert sorted(shuffled.tolist()) == sorted(labels)
    assert shuffled.tolist() == metrics.shuffled_labels(labels, seed=1).tolist()


@pytest.mark.slow
def test_ten_thousand_tracks_run_in_seconds():
    vectors, labels = random_tracks(n=10_000, dims=256, n_labels=20, seed=11)
    start = time.perf_counter()
    indices, _ = metrics.cosine_neighbours(vectors, 10)
    average_precision = metrics.mean_average_precision(vectors, labels)
    assert indices.shape == (10_000, 10)
    assert 0.0 < average_precision < 0.2
    assert time.perf_counter() - start < 60

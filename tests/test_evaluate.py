"""evaluate on a briefly trained home whose folder labels are the synthetic styles."""

from __future__ import annotations

import json
import shutil
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest

from musimilar import metrics
from musimilar.catalog import Catalog
from musimilar.errors import NotReadyError
from musimilar.evaluate import FIGURES, LABEL_FIGURES, SEGMENT_FIGURES
from musimilar.home import Home
from musimilar.library import Library
from musimilar.metrics import chance_average_precision

SEGMENT_SAMPLE = 8  # tests about label figures embed few crops


@pytest.fixture(scope="module")
def report(trained_home):
    home, _, _ = trained_home
    return Library.open(home.root, create=False).evaluate(k=10, control=True)


def test_the_trained_model_beats_the_baseline_and_chance(report) -> None:
    assert (report.by, report.k, report.tracks) == ("folder", 10, 32)
    assert report.labels == {"chiptune": 8, "piano-ballad": 8, "string-pad": 8, "techno": 8}
    assert report.model["precision_at_k"] > report.baseline["precision_at_k"]
    assert report.model["knn_accuracy"] > report.baseline["knn_accuracy"]
    for figure in FIGURES:
        margin = 0.2 if figure in LABEL_FIGURES else three_standard_errors(report.chance[figure], report.tracks)
        assert report.model[figure] > report.chance[figure] + margin, figure
        assert report.baseline[figure] > report.chance[figure] + margin, figure


def three_standard_errors(chance: float, queries: int) -> float:
    """Three binomial standard errors of a hit rate at chance over `queries` queries: a segment-retrieval figure this
    far above chance is not luck (the briefly trained model finds a 10 s clip's other half 4 to 8 times in 32)."""
    return 3 * float(np.sqrt(chance * (1 - chance) / queries))


def test_chance_levels_follow_the_label_counts(report) -> None:
    assert report.chance["precision_at_k"] == pytest.approx(7 / 31)  # 7 same-style tracks among 31 others
    assert report.chance["knn_accuracy"] == report.chance["linear_probe_accuracy"] == 0.25
    assert report.chance["top1"] == pytest.approx(1 / 32)
    assert report.chance["top10"] == pytest.approx(10 / 32)
    assert report.segment_tracks == 32
    assert report.warnings == []


def test_the_shuffled_label_control_falls_to_chance(report) -> None:
    for space in ("model", "baseline"):
        control = report.control[space]
        assert abs(control["precision_at_k"] - report.chance["precision_at_k"]) < 0.1
        assert abs(control["map"] - report.chance["map"]) < 0.1
        assert control["knn_accuracy"] < report.chance["knn_accuracy"] + 0.15
        assert control["knn_accuracy"] < getattr(report, space)["knn_accuracy"] - 0.4


def test_the_same_seed_gives_the_same_figures(trained_home, report) -> None:
    again = Library.open(trained_home[0].root, create=False).evaluate(k=10, control=True)
    assert again.as_dict() | {"seconds": 0} == report.as_dict() | {"seconds": 0}


def test_the_report_is_plain_json_with_every_figure(report) -> None:
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    for part in ("model", "baseline", "chance"):
        assert set(data[part]) == set(FIGURES)
        assert all(isinstance(data[part][figure], float) for figure in FIGURES)
    assert set(data["control"]) == {"model", "baseline"}
    assert set(data["control"]["model"]) == set(LABEL_FIGURES)
    assert {
        "by",
        "k",
        "exclude_same",
        "tracks",
        "labels",
        "warnings",
        "segment_tracks",
        "model_fingerprint",
        "seconds",
    } <= set(data)


def test_excluding_the_album_removes_album_mates_from_the_neighbours(trained_home, tmp_path: Path) -> None:
    home, library, tracks = trained_home
    labels = tmp_path / "labels.csv"
    # Each style is one album: with its album mates excluded, no track has a same-style candidate left.
    labels.write_text("path,album\n" + "".join(f"{t.path},{t.style} album\n" for t in tracks))
    filtered = Library.open(home.root, create=False).evaluate(
        exclude_same="album", labels_csv=labels, sample=SEGMENT_SAMPLE
    )
    assert filtered.model["precision_at_k"] == filtered.baseline["precision_at_k"] == 0.0
    assert filtered.chance["precision_at_k"] == 0.0
    assert filtered.model["knn_accuracy"] == 0.0
    assert np.isnan(filtered.model["map"]) and filtered.as_dict()["model"]["map"] is None


def test_unknown_albums_are_never_excluded(trained_home) -> None:
    home, _, _ = trained_home
    unfiltered = Library.open(home.root, create=False).evaluate(sample=SEGMENT_SAMPLE)
    filtered = Library.open(home.root, create=False).evaluate(exclude_same="artist", sample=SEGMENT_SAMPLE)
    assert {f: filtered.model[f] for f in LABEL_FIGURES} == {f: unfiltered.model[f] for f in LABEL_FIGURES}
    assert filtered.warnings == ["--exclude-same artist: no track has an 'artist' label, so nothing is excluded"]


def test_a_label_file_is_used_without_being_stored(trained_home, tmp_path: Path) -> None:
    home, _, tracks = trained_home
    labels = tmp_path / "labels.csv"
    rows = [f"{t.path},{t.style.split('-')[0].upper()}" for t in tracks[:-3]] + [f"{tmp_path}/gone.wav,x"]
    labels.write_text("path,genre\n" + "\n".join(rows) + "\n")
    report = Library.open(home.root, create=False).evaluate(labels_csv=labels, sample=SEGMENT_SAMPLE)
    assert report.by == "genre"  # the default once tracks have a genre
    assert report.tracks == 29 and report.labels["STRING"] == 5  # the last three tracks are string pads
    assert any("3 of 32 tracks have no 'genre' label" in text for text in report.warnings)
    assert any("1 paths name no converted track" in text for text in report.warnings)
    with Catalog(home.catalog_path) as catalog:
        assert all("genre" not in track.labels for track in catalog.tracks())


def test_without_labels_segment_retrieval_is_still_measured(trained_home) -> None:
    home, _, _ = trained_home
    calls: list[tuple[int, int]] = []
    report = Library.open(home.root, create=False).evaluate(
        by="genre",
        sample=SEGMENT_SAMPLE,
        progress=lambda stage, done, total, note: calls.append((done, total)),
    )
    assert all(report.model[figure] is None for figure in LABEL_FIGURES)
    assert all(report.model[figure] is not None for figure in SEGMENT_FIGURES)
    assert report.segment_tracks == SEGMENT_SAMPLE and calls[-1] == (2 * SEGMENT_SAMPLE, 2 * SEGMENT_SAMPLE)
    assert report.tracks == 0 and report.labels == {}
    assert "no track has a 'genre' label" in report.warnings[0]


def test_labels_with_few_tracks_are_named(trained_home, tmp_path: Path) -> None:
    home, _, tracks = trained_home
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n" + "".join(f"{t.path},{'rare' if i < 2 else 'common'}\n" for i, t in enumerate(tracks))
    )
    report = Library.open(home.root, create=False).evaluate(labels_csv=labels, sample=SEGMENT_SAMPLE)
    assert report.by == "label" and report.labels == {"common": 30, "rare": 2}
    assert "1 labels have fewer than 5 tracks, so their figures rest on very few examples: rare (2)" in report.warnings


def test_a_home_without_a_model_or_with_stale_embeddings_is_not_ready(trained_home, tmp_path: Path) -> None:
    import torch

    from musimilar.checkpoint import load_model, save_model
    from musimilar.encoder import ContrastiveModel

    with pytest.raises(NotReadyError, match="no trained model"):
        Library.open(tmp_path / "empty").evaluate()
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    model = load_model(copy.current_model_path)
    torch.manual_seed(1)
    save_model(copy.current_model_path, ContrastiveModel(model.model), model.audio, model.mel, model.model, model.embed)
    with pytest.raises(NotReadyError, match="embeddings were made with another model"):
        Library.open(copy.root, create=False).evaluate()


def test_chance_average_precision_matches_the_mean_over_all_rankings() -> None:
    labels = np.array(["a", "a", "a", "b", "b", "c"])
    groups = np.array([0, 0, metrics.UNKNOWN_GROUP, 1, 2, 2])
    for exclude in (None, groups):
        expected = []
        for query in range(len(labels)):
            candidates = [
                i
                for i in range(len(labels))
                if i != query
                and (exclude is None or exclude[i] != exclude[query] or exclude[query] == metrics.UNKNOWN_GROUP)
            ]
            relevant = [labels[i] == labels[query] for i in candidates]
            if any(relevant):
                expected.append(
                    np.mean(
                        [
                            average_precision([relevant[i] for i in order])
                            for order in permutations(range(len(candidates)))
                        ]
                    )
                )
        assert chance_average_precision(labels, exclude) == pytest.approx(np.mean(expected))


def average_precision(relevant: list[bool]) -> float:
    hits = np.cumsum(relevant)
    return float(np.mean([hits[place] / (place + 1) for place, hit in enumerate(relevant) if hit]))

"""classify (neighbours' vote or the model file's head) and train_head, on the briefly trained home."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musimilar.catalog import Catalog
from musimilar.checkpoint import load_model, read_model_file
from musimilar.embeddings import load_embeddings
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.home import Home
from musimilar.library import Library
from musimilar.synth import write_library


@pytest.fixture(scope="module")
def new_clips(tmp_path_factory: pytest.TempPathFactory):
    """One new clip of each style of the trained home, not in its library (another seed)."""
    return write_library(tmp_path_factory.mktemp("new-clips"), styles=4, per_style=1, seconds=10.0, seed=99)


@pytest.fixture(scope="module")
def home_with_head(trained_home, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the trained home with a "folder" head, and what train_head reported."""
    home = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path_factory.mktemp("head") / "home")))
    return home, Library.open(home.root, create=False).fit_head("folder")


def test_the_vote_names_the_style_of_new_clips(trained_home, new_clips) -> None:
    results = Library.open(trained_home[0].root, create=False).classify([str(clip.path) for clip in new_clips])
    for clip, result in zip(new_clips, results):
        assert (result.by, result.method, result.error) == ("folder", "vote", None)
        assert result.labels[0][0] == clip.style
        scores = [score for _, score in result.labels]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6


def test_a_track_never_votes_for_itself(trained_home) -> None:
    home, _, _ = trained_home
    table = load_embeddings(home.embeddings_dir)
    with Catalog(home.catalog_path) as catalog:
        folder = {track.id: track.labels["folder"] for track in catalog.tracks()}
    for track_id in table.track_ids[:6].tolist():
        sims = np.asarray(table.vectors) @ np.asarray(table.vectors[table.row_of(track_id)])
        sims[table.row_of(track_id)] = -np.inf
        nearest_other = int(table.track_ids[int(np.argmax(sims))])
        (result,) = Library.open(home.root, create=False).classify([str(track_id)], k=1)
        assert result.labels == [(folder[nearest_other], 1.0)]


def test_a_bad_query_raises_or_with_keep_going_is_reported(trained_home, tmp_path: Path) -> None:
    home, library, tracks = trained_home
    with pytest.raises(MusimilarError, match="no such file or track id"):
        Library.open(home.root, create=False).classify([str(tmp_path / "absent.wav")])
    results = Library.open(home.root, create=False).classify(
        [str(tmp_path / "absent.wav"), str(tracks[0].path)], keep_going=True
    )
    assert "no such file or track id" in results[0].error and results[0].labels == []
    assert results[1].error is None and results[1].labels[0][0] == tracks[0].style


def test_a_label_no_track_has_is_not_ready(trained_home) -> None:
    with pytest.raises(NotReadyError, match="no embedded track has a 'genre' label"):
        Library.open(trained_home[0].root, create=False).classify(["1"], by="genre")


def test_train_head_keeps_the_encoder_and_its_fingerprint(trained_home, home_with_head) -> None:
    home, head_report = home_with_head
    before, after = load_model(trained_home[0].current_model_path), load_model(home.current_model_path)
    assert after.fingerprint == before.fingerprint == head_report["fingerprint"]
    for name, tensor in before.network.state_dict().items():
        assert torch.equal(tensor, after.network.state_dict()[name]), name
    head = after.heads["folder"]
    assert head["labels"] == ["chiptune", "piano-ballad", "string-pad", "techno"]
    assert tuple(head["weight"].shape) == (after.dim, 4) and tuple(head["bias"].shape) == (4,)
    archived = read_model_file(home.models_dir / f"model-{after.fingerprint}.pt")
    assert archived["fingerprint"] == after.fingerprint and set(archived["heads"]) == {"folder"}
    assert head_report | {"model": ""} == {
        "by": "folder",
        "labels": 4,
        "tracks": 32,
        "training_accuracy": 1.0,
        "model": "",
        "fingerprint": after.fingerprint,
    }


def test_the_head_answers_for_its_label_and_the_vote_when_asked(home_with_head, new_clips) -> None:
    home, _ = home_with_head
    queries = [str(clip.path) for clip in new_clips]
    by_head = Library.open(home.root, create=False).classify(queries, by="folder", top=4)
    for clip, result in zip(new_clips, by_head):
        assert result.method == "head" and result.labels[0][0] == clip.style
        assert sum(score for _, score in result.labels) == pytest.approx(1.0, abs=1e-5)  # probabilities
    assert {
        result.method for result in Library.open(home.root, create=False).classify(queries, by="folder", use_head=False)
    } == {"vote"}


def test_a_head_needs_two_labels(trained_home, tmp_path: Path) -> None:
    home = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    with Catalog(home.catalog_path) as catalog:
        catalog.set_labels({track.id: {"genre": "all the same"} for track in catalog.tracks()})
    with pytest.raises(NotReadyError, match="needs two labels or more"):
        Library.open(home.root, create=False).fit_head("genre")
    assert load_model(home.current_model_path).heads == {}

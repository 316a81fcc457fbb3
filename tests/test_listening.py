"""Radio and path on the trained home: no repeats, the history respected, and the music followed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musimilar.catalog import Catalog
from musimilar.home import Home
from musimilar.library import Library
from musimilar.recommend import Diversity


@pytest.fixture(scope="module")
def library(trained_home):
    with Library.open(trained_home[0].root, create=False) as opened:
        yield opened


@pytest.fixture(scope="module")
def folder_of(trained_home) -> dict[int, str]:
    with Catalog(trained_home[0].catalog_path) as catalog:
        return {track.id: track.labels["folder"] for track in catalog.tracks()}


def test_the_radio_plays_on_without_repeating_seeds_or_history(library: Library, folder_of) -> None:
    seed = next(track_id for track_id, folder in folder_of.items() if folder == "techno")
    seen = [str(track_id) for track_id, folder in folder_of.items() if folder == "techno"][1:3]
    played = library.radio([str(seed)], count=12, seen=seen)
    ids = [result.track_id for result in played]
    assert [result.rank for result in played] == list(range(1, 13))
    assert len(set(ids)) == 12 and seed not in ids and not {int(s) for s in seen} & set(ids)
    assert [folder_of[i] for i in ids[:4]] == ["techno"] * 4  # the seed's 5 other techno clips come first


def test_randomness_is_reproducible_and_still_follows_the_seed(library: Library, folder_of) -> None:
    seed = str(next(iter(folder_of)))
    first = library.radio([seed], count=6, randomness=1.0, rng_seed=3)
    again = library.radio([seed], count=6, randomness=1.0, rng_seed=3)
    assert [r.track_id for r in first] == [r.track_id for r in again]
    draws = {tuple(r.track_id for r in library.radio([seed], count=6, randomness=1.0, rng_seed=s)) for s in range(6)}
    assert len(draws) > 1


def test_disliked_tracks_are_never_played_and_push_the_radio_away(library: Library, folder_of) -> None:
    seed = next(track_id for track_id, folder in folder_of.items() if folder == "techno")
    plain = library.radio([str(seed)], count=5)
    disliked = [str(plain[0].track_id), str(plain[1].track_id)]
    steered = library.radio([str(seed)], count=5, avoid=disliked)
    assert not {int(d) for d in disliked} & {r.track_id for r in steered}


def test_diversity_limits_hold_over_the_whole_radio(trained_home, tmp_path: Path) -> None:
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    with Catalog(copy.catalog_path) as catalog:
        ids = [track.id for track in catalog.tracks()]
        catalog.set_labels({track_id: {"album": f"album-{i % 3}"} for i, track_id in enumerate(ids)})
    with Library.open(copy.root, create=False) as library:
        played = library.radio([str(ids[0])], count=6, diversity=Diversity(max_per_album=2))
    albums = [r.labels["album"] for r in played]
    assert len(played) == 6 and max(albums.count(album) for album in set(albums)) == 2


def test_a_path_moves_evenly_from_one_track_to_the_other(library: Library, folder_of) -> None:
    start = next(track_id for track_id, folder in folder_of.items() if folder == "techno")
    end = next(track_id for track_id, folder in folder_of.items() if folder == "piano-ballad")
    steps = library.path(str(start), str(end), steps=6)
    ids = [result.track_id for result in steps]
    assert len(set(ids)) == 6 and start not in ids and end not in ids
    ready = library.ready()
    a, b = ready.stored_vector(start), ready.stored_vector(end)
    progress = [float(ready.stored_vector(i) @ b - ready.stored_vector(i) @ a) for i in ids]
    assert progress[0] < 0 < progress[-1]  # nearer the start first, nearer the end last
    assert np.corrcoef(np.arange(6), progress)[0, 1] > 0.7

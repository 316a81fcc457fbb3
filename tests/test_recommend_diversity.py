"""Diversity of recommendations: per-artist and per-album limits, the query's album, and duplicate collapse."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musimilar.catalog import Catalog
from musimilar.convert import convert
from musimilar.embed import embed_library
from musimilar.embeddings import load_embeddings
from musimilar.home import Home
from musimilar.library import Library
from musimilar.recommend import Diversity
from musimilar.settings import Settings
from musimilar.synth import get_style, synthesise_clip, write_audio

ARTISTS = 4


@pytest.fixture(scope="module")
def home(trained_home, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A copy of the trained home where track i (by id) is by artist i % 4 on album i // 2: the two tracks of an
    album are neighbours of one style, and every style has tracks by every artist."""
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path_factory.mktemp("diversity") / "home")))
    with Catalog(copy.catalog_path) as catalog:
        ids = [track.id for track in catalog.tracks()]
        catalog.set_labels(
            {
                track_id: {"artist": f"artist-{i % ARTISTS}", "album": f"album-{i // 2}"}
                for i, track_id in enumerate(ids)
            }
        )
    return copy


@pytest.fixture(scope="module")
def recommender(home: Home):
    with Library.open(home.root, create=False) as library:
        yield library


def ranked_others(home: Home, query_id: int) -> list[int]:
    """Every other track by cosine to the query, best first: the order the limits are applied to."""
    table = load_embeddings(home.embeddings_dir)
    sims = np.asarray(table.vectors) @ np.asarray(table.vectors[table.row_of(query_id)])
    order = np.argsort(-sims, kind="stable")
    return [int(table.track_ids[row]) for row in order if int(table.track_ids[row]) != query_id]


def labels_of(home: Home) -> dict[int, dict[str, str]]:
    with Catalog(home.catalog_path) as catalog:
        return {track.id: track.labels for track in catalog.tracks()}


def test_at_most_one_per_artist_keeps_each_artists_best(home: Home, recommender: Library) -> None:
    labels = labels_of(home)
    results = recommender.recommend(["5"], k=10, diversity=Diversity(max_per_artist=1, duplicate_similarity=None))
    artists = [labels[r.track_id]["artist"] for r in results]
    assert len(results) == ARTISTS and len(set(artists)) == ARTISTS  # the limit leaves fewer than k
    best_per_artist: dict[str, int] = {}
    for track_id in ranked_others(home, 5):
        best_per_artist.setdefault(labels[track_id]["artist"], track_id)
    assert [r.track_id for r in results] == sorted(best_per_artist.values(), key=ranked_others(home, 5).index)
    assert [r.rank for r in results] == [1, 2, 3, 4]


def test_per_album_and_per_artist_limits_combine(home: Home, recommender: Library) -> None:
    labels = labels_of(home)
    diversity = Diversity(max_per_artist=2, max_per_album=1, duplicate_similarity=None)
    results = recommender.recommend(["12"], k=6, diversity=diversity)
    expected, artists, albums = [], {}, set()
    for track_id in ranked_others(home, 12):
        artist, album = labels[track_id]["artist"], labels[track_id]["album"]
        if artists.get(artist, 0) < 2 and album not in albums:
            expected.append(track_id)
            artists[artist] = artists.get(artist, 0) + 1
            albums.add(album)
    assert [r.track_id for r in results] == expected[:6]
    similarities = [r.similarity for r in results]
    assert similarities == sorted(similarities, reverse=True)


def test_the_querys_album_can_be_left_out(home: Home, recommender: Library) -> None:
    labels = labels_of(home)
    album = labels[7]["album"]
    mates = [track_id for track_id, values in labels.items() if values["album"] == album and track_id != 7]
    everything = recommender.recommend(["7"], k=31, diversity=Diversity(duplicate_similarity=None))
    assert set(mates) <= {r.track_id for r in everything}
    results = recommender.recommend(
        ["7"], k=31, diversity=Diversity(exclude_same_album=True, duplicate_similarity=None)
    )
    assert len(results) == 31 - len(mates)
    assert all(labels[r.track_id]["album"] != album for r in results)


def test_without_limits_the_ranking_is_the_cosine_ranking(home: Home, recommender: Library) -> None:
    results = recommender.recommend(["20"], k=10, diversity=Diversity(duplicate_similarity=None))
    assert [r.track_id for r in results] == ranked_others(home, 20)[:10]


def test_copies_and_lossless_re_encodings_are_collapsed(trained_home, tmp_path: Path) -> None:
    copy = Home.open(Path(shutil.copytree(trained_home[0].root, tmp_path / "home")))
    original = trained_home[2][0].path
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(original, extra / "same-bytes.wav")  # an exact copy: the catalog sees the same fingerprint
    clip = synthesise_clip(get_style("techno"), 10.0, 22050, np.random.default_rng(7))
    write_audio(extra / "twin.wav", clip, 22050)
    write_audio(extra / "twin.flac", clip, 22050)  # the same audio in other bytes: an identical embedding
    convert(copy, [extra], Settings(), workers=1)
    embed_library(copy, device_name="cpu")
    with Catalog(copy.catalog_path) as catalog:
        ids = {Path(track.path).name: track.id for track in catalog.tracks()}
    # A briefly trained model puts many distinct clips above the default 0.995, so only true twins are collapsed
    # here (see test_the_default_collapse_leaves_k_results).
    diversity = Diversity(duplicate_similarity=0.9999)
    with Library.open(copy.root, create=False) as recommender:
        from_original = recommender.recommend([str(ids[original.name])], k=40, diversity=diversity)
        from_copy = recommender.recommend([str(extra / "same-bytes.wav")], k=40, diversity=diversity)
        from_twin = recommender.recommend([str(ids["twin.wav"])], k=40, diversity=diversity)
        from_other = recommender.recommend([str(ids["techno-01.wav"])], k=40, diversity=diversity)
    assert ids["same-bytes.wav"] not in {r.track_id for r in from_original}  # the query's own duplicate
    assert ids[original.name] not in {r.track_id for r in from_copy}
    assert ids["twin.flac"] not in {r.track_id for r in from_twin}  # as similar to the query as itself
    twins = [r.track_id for r in from_other if r.track_id in (ids["twin.wav"], ids["twin.flac"])]
    assert len(twins) == 1  # the second of two identical results is collapsed into the first
    copies = [r.track_id for r in from_other if r.track_id in (ids[original.name], ids["same-bytes.wav"])]
    assert len(copies) == 1
    assert len(from_other) == 35 - 1 - 2  # every track but the query and the second of each identical pair


def test_the_default_collapse_leaves_k_results(recommender: Library) -> None:
    """Centred embeddings spread out: distinct clips are not taken for duplicates of each other."""
    assert len(recommender.recommend(["1"], k=10)) == 10

"""Paging and searching the catalog in SQLite, read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from musimilar import browse
from musimilar.catalog import Catalog
from musimilar.errors import NotReadyError


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    folder = tmp_path / "music"
    folder.mkdir()
    names = ["Alpha Song.flac", "beta_tune.mp3", "100% Pure.ogg", "Gamma.wav", "Delta.wav", "Ünïcødé.flac"]
    for position, name in enumerate(names):
        (folder / name).write_bytes(bytes([position]) * 100)
    path = tmp_path / "catalog.sqlite"
    with Catalog(path) as catalog:
        catalog.sync(sorted(folder.iterdir()), [folder])
        with catalog.transaction() as db:
            db.execute("UPDATE tracks SET status = 'ok' WHERE path NOT LIKE '%Delta%'")
        ids = {Path(t.path).name: t.id for t in catalog.tracks(None)}
        catalog.set_labels(
            {ids["Gamma.wav"]: {"artist": "The Rockers", "genre": "Rock"}, ids["Alpha Song.flac"]: {"genre": "Évasion"}}
        )
    return path


def names(page: browse.TrackPage) -> list[str]:
    return [Path(t.path).name for t in page.tracks]


def test_every_converted_track_by_id_in_pages(catalog_path: Path) -> None:
    connection = browse.open_readonly(catalog_path)
    first = browse.search_tracks(connection, "", offset=0, limit=2)
    rest = browse.search_tracks(connection, "", offset=2, limit=10)
    assert first.total == rest.total == 5  # Delta is not converted
    assert len(first.tracks) == 2 and len(rest.tracks) == 3
    ids = [t.track_id for t in first.tracks + rest.tracks]
    assert ids == sorted(ids) and "Delta.wav" not in names(first) + names(rest)


def test_search_matches_every_word_in_path_or_labels_ignoring_case(catalog_path: Path) -> None:
    connection = browse.open_readonly(catalog_path)
    assert names(browse.search_tracks(connection, "alpha")) == ["Alpha Song.flac"]
    assert names(browse.search_tracks(connection, "rockers")) == ["Gamma.wav"]
    assert names(browse.search_tracks(connection, "rock gamma")) == ["Gamma.wav"]
    assert names(browse.search_tracks(connection, "rock alpha")) == []
    assert names(browse.search_tracks(connection, "Ünïcødé")) == ["Ünïcødé.flac"]
    assert names(browse.search_tracks(connection, "évasion")) == []  # SQLite folds the case of ASCII only
    assert names(browse.search_tracks(connection, "Évasion")) == ["Alpha Song.flac"]


def test_like_wildcards_in_a_query_are_taken_literally(catalog_path: Path) -> None:
    connection = browse.open_readonly(catalog_path)
    assert names(browse.search_tracks(connection, "100%")) == ["100% Pure.ogg"]
    assert names(browse.search_tracks(connection, "%")) == ["100% Pure.ogg"]
    assert names(browse.search_tracks(connection, "100_")) == []


def test_a_page_is_capped(catalog_path: Path) -> None:
    page = browse.search_tracks(browse.open_readonly(catalog_path), "", limit=10**6)
    assert len(page.tracks) == 5 and page.as_dict()["total"] == 5


def test_the_connection_cannot_write(catalog_path: Path) -> None:
    connection = browse.open_readonly(catalog_path)
    with pytest.raises(sqlite3.OperationalError):
        connection.execute("DELETE FROM tracks")


def test_get_tracks_leaves_out_unknown_and_unconverted_ids(catalog_path: Path) -> None:
    connection = browse.open_readonly(catalog_path)
    every = {t.track_id for t in browse.search_tracks(connection).tracks}
    found = browse.get_tracks(connection, sorted(every) + [999])
    assert set(found) == every
    assert browse.get_track(connection, 999) is None


def test_no_catalog_is_not_ready(tmp_path: Path) -> None:
    with pytest.raises(NotReadyError, match="no catalog"):
        browse.open_readonly(tmp_path / "catalog.sqlite")

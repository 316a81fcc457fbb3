"""Playlists pushed to a real Supysonic over the Subsonic API, read back through the API."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from musimilar.errors import AuthenticationError, MusimilarError, UnreachableError
from musimilar.subsonic import SubsonicClient
from musimilar.subsonic_push import PathMapping, SongMap, push_playlist


def _client(server, password: str | None = None) -> SubsonicClient:
    return SubsonicClient(server.url, server.user, password or server.password, timeout=10)


def _songs_in(client: SubsonicClient, name: str) -> list[list[str]]:
    """The song paths of every playlist called `name`."""
    paths_by_id = {song.id: song.path for song in client.all_songs()}
    return [
        [paths_by_id[i] for i in client.playlist_song_ids(str(p["id"]))]
        for p in client.playlists()
        if p["name"] == name
    ]


def _tracks(music: Path) -> list[Path]:
    return sorted(music.rglob("*.*"))


def test_push_creates_the_playlist_in_order_and_replaces_it(supysonic, tmp_path):
    client = _client(supysonic)
    tracks = _tracks(supysonic.music)
    first = [tracks[4], tracks[0], tracks[7]]
    report = push_playlist(client, "Sounds like", first, PathMapping(), tmp_path / "map.json")
    assert (report.pushed, report.unmapped, report.replaced, report.refresh) == (3, [], 0, "incremental")
    expected = [p.relative_to(supysonic.music).as_posix() for p in first]
    assert _songs_in(client, "Sounds like") == [expected]

    second = [tracks[2], tracks[3]]
    report = push_playlist(client, "Sounds like", second, PathMapping(), tmp_path / "map.json")
    assert (report.pushed, report.replaced, report.refresh) == (2, 1, "none")  # the cached map answered
    assert _songs_in(client, "Sounds like") == [[p.relative_to(supysonic.music).as_posix() for p in second]]


def test_a_mapping_translates_another_prefix(supysonic, tmp_path):
    """The library copied elsewhere here: library_root maps it onto the server's folder."""
    copy = tmp_path / "elsewhere"
    tracks = _tracks(supysonic.music)
    local = [copy / p.relative_to(supysonic.music) for p in tracks[:2]]
    mapping = PathMapping(library_root=copy, server_root="")
    report = push_playlist(_client(supysonic), "Mapped", local, mapping, tmp_path / "map.json")
    assert report.pushed == 2 and report.unmapped == []


def test_unknown_tracks_are_reported_and_the_rest_pushed(supysonic, tmp_path):
    stranger = tmp_path / "not-on-the-server.mp3"
    stranger.write_bytes(b"")
    tracks = _tracks(supysonic.music)
    report = push_playlist(_client(supysonic), "Partly", [tracks[1], stranger], PathMapping(), tmp_path / "m.json")
    assert report.pushed == 1 and report.unmapped == [str(stranger.resolve())]
    assert report.refresh == "full"


def test_nothing_known_leaves_the_old_playlist_alone(supysonic, tmp_path):
    client = _client(supysonic)
    tracks = _tracks(supysonic.music)
    push_playlist(client, "Keep me", tracks[:2], PathMapping(), tmp_path / "map.json")
    stranger = tmp_path / "stranger.flac"
    stranger.write_bytes(b"")
    with pytest.raises(MusimilarError, match="none of the 1 tracks is known"):
        push_playlist(client, "Keep me", [stranger], PathMapping(), tmp_path / "map.json")
    assert len(_songs_in(client, "Keep me")) == 1 and len(_songs_in(client, "Keep me")[0]) == 2


def test_stale_cached_ids_are_refreshed(supysonic, tmp_path):
    tracks = _tracks(supysonic.music)
    cache = SongMap(tmp_path / "map.json")
    cache.songs = {tracks[0].relative_to(supysonic.music).as_posix(): "00000000-0000-0000-0000-000000000000"}
    cache.save()
    report = push_playlist(_client(supysonic), "Stale", [tracks[0]], PathMapping(), tmp_path / "map.json")
    assert report.pushed == 1 and report.refresh == "full"


def test_wrong_password_is_an_authentication_error(supysonic, tmp_path):
    with pytest.raises(AuthenticationError, match="refused user 'alice'"):
        push_playlist(_client(supysonic, "wrong"), "X", [], PathMapping(), tmp_path / "map.json")


def test_a_server_that_is_down_is_unreachable(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SubsonicClient(f"http://127.0.0.1:{port}", "alice", "secret", timeout=5)
    with pytest.raises(UnreachableError, match="cannot reach the server"):
        push_playlist(client, "X", [], PathMapping(), tmp_path / "map.json")

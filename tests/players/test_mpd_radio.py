"""The MPD radio against a real MPD: the queue grows with the next tracks, never repeats, survives a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from musimilar.errors import MusimilarError, UnreachableError
from musimilar.mpd_radio import MpdAddress, MpdRadio


def _in_name_order(music: Path):
    """Stands in for the recommender: the library's files in name order, leaving out what was seen."""
    tracks = sorted(music.rglob("*.*"))

    def next_tracks(seeds: list[Path], seen: list[Path], count: int) -> list[Path]:
        assert seeds, "the radio always passes the listening history"
        return [t for t in tracks if t not in set(seen)][:count]

    return tracks, next_tracks


def _queue(server) -> list[str]:
    client = server.client()
    try:
        return [entry["file"] for entry in client.playlistinfo()]
    finally:
        client.disconnect()


def _play_first(server, uri: str) -> None:
    client = server.client()
    try:
        client.add(uri)
        client.play(0)
    finally:
        client.disconnect()


def test_address_parsing():
    assert MpdAddress.parse("localhost") == MpdAddress("localhost", 6600)
    assert MpdAddress.parse("127.0.0.1:6601") == MpdAddress("127.0.0.1", 6601)
    assert MpdAddress.parse("/run/mpd/socket") == MpdAddress("/run/mpd/socket", 0)
    with pytest.raises(MusimilarError, match="not an MPD address"):
        MpdAddress.parse("host:port")


def test_once_tops_the_queue_up_after_the_playing_track(mpd_server):
    tracks, next_tracks = _in_name_order(mpd_server.music)
    first = tracks[0].relative_to(mpd_server.music).as_posix()
    _play_first(mpd_server, first)
    radio = MpdRadio(MpdAddress.parse(mpd_server.address), mpd_server.music, next_tracks, keep=3)
    report = radio.once()
    expected = [t.relative_to(mpd_server.music).as_posix() for t in tracks[1:4]]
    assert report.added == expected
    assert _queue(mpd_server) == [first, *expected]
    assert MpdRadio(MpdAddress.parse(mpd_server.address), mpd_server.music, next_tracks, keep=3).once().added == []


def test_follow_keeps_up_never_repeats_and_reconnects(mpd_server):
    tracks, next_tracks = _in_name_order(mpd_server.music)
    _play_first(mpd_server, tracks[0].relative_to(mpd_server.music).as_posix())
    messages: list[str] = []
    radio = MpdRadio(
        MpdAddress.parse(mpd_server.address), mpd_server.music, next_tracks, keep=2, notify=messages.append
    )
    stop = threading.Event()
    follower = threading.Thread(target=radio.follow, kwargs={"stop": stop, "poll_seconds": 0.1})
    follower.start()
    try:
        _wait_for(lambda: len(_queue(mpd_server)) == 3)
        for played in range(2):  # skipping ahead leaves fewer than 2 after the current track
            client = mpd_server.client()
            client.next()
            client.disconnect()
            _wait_for(lambda: len(_queue(mpd_server)) == 4 + played)
        mpd_server.stop()  # MPD goes away (its queue with it) and comes back
        _wait_for(lambda: any("dropped the connection" in m or "cannot reach" in m for m in messages))
        mpd_server.restart()
        _wait_for(lambda: radio.report.reconnects == 1 and len(_queue(mpd_server)) == 2)
    finally:
        stop.set()
        follower.join(timeout=15)
    assert not follower.is_alive()
    assert len(radio.report.added) == len(set(radio.report.added)) == 6
    assert radio.report.added == [t.relative_to(mpd_server.music).as_posix() for t in tracks[1:7]]


def test_once_with_mpd_down_is_unreachable(mpd_server):
    _, next_tracks = _in_name_order(mpd_server.music)
    mpd_server.stop()
    with pytest.raises(UnreachableError, match="cannot reach MPD"):
        MpdRadio(MpdAddress.parse(mpd_server.address), mpd_server.music, next_tracks).once()


def _wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for MPD")
        time.sleep(0.1)

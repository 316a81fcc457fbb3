"""radio, path, playlist push and recommend's playlist files through the command line, on the trained library,
against a real Supysonic and a real MPD."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from real_players import running_mpd, running_supysonic
from typer.testing import CliRunner

from musimilar.cli.app import app
from musimilar.errors import EXIT_AUTH, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_UNREACHABLE, EXIT_USAGE
from musimilar.subsonic import SubsonicClient

REPOSITORY = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201 - typer's Result
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def home_copy(trained_home, tmp_path):
    """(home folder, library folder, tracks) with a home of its own (commands may write to it)."""
    home, library, tracks = trained_home
    copy = tmp_path / "home"
    shutil.copytree(home.root, copy)
    return copy, library, tracks


def _json(result) -> object:  # noqa: ANN001
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_recommend_writes_an_m3u8_file_with_relative_paths(trained_home, tmp_path):
    home, library, tracks = trained_home
    out = tmp_path / "lists" / "like.m3u8"
    result = run(
        "recommend", tracks[0].path, "--home", home.root, "-k", "3", "--format", "m3u",
        "--relative-to", library, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 7
    assert all(line.startswith("#EXTINF:10,") for line in lines[1::2])
    assert all(not line.startswith("/") and (library / line).is_file() for line in lines[2::2])


def test_radio_never_repeats_what_was_seen(trained_home, tmp_path):
    home, _, tracks = trained_home
    seen = tmp_path / "seen.m3u"
    seen.write_text("".join(f"{t.path}\n" for t in tracks[1:4]), encoding="utf-8")
    answer = _json(
        run("radio", tracks[0].path, "--home", home.root, "--count", "6", "--seen", seen, "--format", "json")
    )
    paths = [item["path"] for item in answer]
    assert len(paths) == len(set(paths)) == 6
    assert not {str(t.path.resolve()) for t in tracks[:4]} & set(paths)


def test_path_goes_from_start_to_end(trained_home):
    home, _, tracks = trained_home
    start, end = tracks[0].path, tracks[-1].path
    answer = _json(run("path", start, end, "--home", home.root, "--steps", "4", "--format", "json"))
    paths = [item["path"] for item in answer]
    assert len(paths) == len(set(paths)) == 4
    assert not {str(start.resolve()), str(end.resolve())} & set(paths)  # the ends are not steps


def test_playlist_push_puts_the_recommendations_on_the_server(home_copy, tmp_path):
    home, library, tracks = home_copy
    expected = [
        r["path"] for r in _json(run("recommend", tracks[0].path, "--home", home, "-k", "4", "--format", "json"))
    ]
    with running_supysonic(tmp_path / "supysonic", library) as server:
        env = {"MUSIMILAR_SUBSONIC_PASSWORD": server.password}
        push = ("playlist", "push", "Sounds like", tracks[0].path, "-k", "4", "--home", home)
        where = ("--subsonic", server.url, "--user", server.user)
        report = _json(run(*push, *where, "--format", "json", env=env))
        assert (report["pushed"], report["unmapped"]) == (4, [])
        client = SubsonicClient(server.url, server.user, server.password)
        paths_by_id = {song.id: song.path for song in client.all_songs()}
        (playlist,) = [p for p in client.playlists() if p["name"] == "Sounds like"]
        pushed = [paths_by_id[i] for i in client.playlist_song_ids(str(playlist["id"]))]
        assert pushed == [Path(p).relative_to(library).as_posix() for p in expected]

        wrong = run(*push, *where, env={"MUSIMILAR_SUBSONIC_PASSWORD": "wrong"})
        assert wrong.exit_code == EXIT_AUTH and "refused user 'alice'" in wrong.stderr
        assert run(*push, *where).exit_code == EXIT_USAGE  # no password and no terminal to ask on

        stranger = tmp_path / "elsewhere.m3u8"
        stranger.write_text(f"{tracks[1].path}\n{tmp_path / 'not-on-server.mp3'}\n", encoding="utf-8")
        partial = run("playlist", "push", "Mixed", "--from", stranger, "--home", home, *where, env=env)
        assert partial.exit_code == EXIT_PARTIAL and "not on the server" in partial.stderr
    down = run(*push, *where, env=env)
    assert down.exit_code == EXIT_UNREACHABLE and "cannot reach the server" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1


def test_radio_mpd_once_tops_up_the_queue(trained_home, tmp_path):
    home, library, tracks = trained_home
    with running_mpd(tmp_path / "mpd", library) as mpd:
        client = mpd.client()
        client.add(tracks[0].path.relative_to(library).as_posix())
        client.play(0)
        client.disconnect()
        command = ("radio", "--mpd", mpd.address, "--music-directory", library, "--keep", "3", "--once")
        result = run(*command, "--home", home.root)
        assert result.exit_code == 0, result.output
        client = mpd.client()
        queue = [entry["file"] for entry in client.playlistinfo()]
        client.disconnect()
        assert len(queue) == len(set(queue)) == 4
        assert run(*command, "--home", home.root).exit_code == 0  # nothing to add: the queue is full
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = run("radio", "--mpd", f"127.0.0.1:{port}", "--music-directory", library, "--once", "--home", home.root)
    assert down.exit_code == EXIT_UNREACHABLE and "cannot reach MPD" in down.stderr


def test_radio_mpd_follows_until_ctrl_c(trained_home, tmp_path):
    """The real command in a process of its own: it keeps the queue topped up, and Ctrl-C stops it cleanly."""
    home, library, tracks = trained_home
    with running_mpd(tmp_path / "mpd", library) as mpd:
        command = [
            sys.executable, "-m", "musimilar", "radio", str(tracks[0].path), "--mpd", mpd.address,
            "--music-directory", str(library), "--keep", "2", "--home", str(home.root),
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
        follower = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(_queue(mpd)) < 2 and time.monotonic() < deadline and follower.poll() is None:
                time.sleep(0.2)
            follower.send_signal(signal.SIGINT)
            _, stderr = follower.communicate(timeout=30)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        assert follower.returncode == EXIT_INTERRUPTED, stderr
        assert "radio: stopped after queueing 2 tracks" in stderr and "Traceback" not in stderr
        assert len(set(_queue(mpd))) == 2


def _queue(mpd) -> list[str]:  # noqa: ANN001
    client = mpd.client()
    try:
        return [entry["file"] for entry in client.playlistinfo()]
    finally:
        client.disconnect()

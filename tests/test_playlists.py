"""Extended M3U8 and XSPF playlists: tags in #EXTINF, relative paths, atomic replacement, reading back."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import mutagen
import numpy as np

from musimilar.playlists import entries_for, m3u8_text, read_m3u, write_playlist, xspf_text
from musimilar.synth import get_style, synthesise_clip, write_audio


def _clip(path: Path, seconds: float = 2.0) -> Path:
    write_audio(path, synthesise_clip(get_style("techno"), seconds, 22050, np.random.default_rng(0)), 22050)
    return path


def _tagged(path: Path, artist: str, title: str) -> Path:
    _clip(path)
    audio = mutagen.File(str(path), easy=True)
    audio["artist"], audio["title"] = artist, title
    audio.save()
    return path


def test_extinf_shows_length_artist_and_title_or_the_file_name(tmp_path):
    tagged = _tagged(tmp_path / "music" / "a.flac", "Björk", "Jóga")
    bare = _clip(tmp_path / "music" / "sub dir" / "untitled song.wav", seconds=3.0)
    text = m3u8_text(entries_for([tagged, bare]))
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXTINF:2,Björk - Jóga",
        str(tagged.resolve()),
        "#EXTINF:3,untitled song",
        str(bare.resolve()),
    ]


def test_paths_relative_to_a_playlist_folder(tmp_path):
    track = _clip(tmp_path / "music" / "rock" / "x.wav")
    text = m3u8_text(entries_for([track]), relative_to=tmp_path / "playlists")
    assert text.splitlines()[2] == "../music/rock/x.wav"
    assert m3u8_text(entries_for([track]), relative_to=tmp_path / "music").splitlines()[2] == "rock/x.wav"


def test_read_m3u_resolves_relative_lines_against_the_playlist(tmp_path):
    track = _clip(tmp_path / "music" / "a b.wav")
    playlist = tmp_path / "playlists" / "mix.m3u8"
    write_playlist(playlist, m3u8_text(entries_for([track]), relative_to=playlist.parent))
    assert read_m3u(playlist) == [track.resolve()]


def test_write_playlist_replaces_atomically_and_leaves_no_temporary(tmp_path):
    playlist = tmp_path / "mix.m3u8"
    write_playlist(playlist, "#EXTM3U\nold\n")
    write_playlist(playlist, "#EXTM3U\nnew\n")
    assert playlist.read_text(encoding="utf-8") == "#EXTM3U\nnew\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mix.m3u8"]


def test_xspf_is_valid_xml_with_uris_titles_and_durations(tmp_path):
    tagged = _tagged(tmp_path / "a & b.flac", "AC/DC", "T.N.T. <live>")
    root = ElementTree.fromstring(xspf_text(entries_for([tagged]), title="Mix"))
    ns = {"x": "http://xspf.org/ns/0/"}
    track = root.find("x:trackList/x:track", ns)
    assert root.find("x:title", ns).text == "Mix"
    assert track.find("x:location", ns).text == "file://" + str(tagged.resolve()).replace(" ", "%20").replace(
        "&", "%26"
    )
    assert (track.find("x:creator", ns).text, track.find("x:title", ns).text) == ("AC/DC", "T.N.T. <live>")
    assert track.find("x:duration", ns).text == "2000"

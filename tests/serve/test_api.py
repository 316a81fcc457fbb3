"""The JSON API through the ASGI test client: every endpoint, bad ids, Range requests, the map and uploads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from musimilar.serve.state import ServeOptions
from musimilar.synth import get_style, synthesise_clip, write_audio


def is_one_line_error(response) -> bool:
    body = response.json()
    return set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css", "vendor/plotly-gl2d.min.js", "vendor/plotly-LICENSE.txt"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/static/../catalog.sqlite").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "musimilar"


def test_status_is_what_info_prints(client: TestClient, served_home) -> None:
    status = client.get("/api/status").json()
    assert status["tracks"]["ok"] == len(served_home[2]) and status["home"] == str(served_home[0])


def test_tracks_are_paged_and_searched(client: TestClient, served_home) -> None:
    tracks = served_home[2]
    first = client.get("/api/tracks", params={"limit": 10}).json()
    second = client.get("/api/tracks", params={"limit": 10, "offset": 10}).json()
    assert first["total"] == len(tracks) and len(first["tracks"]) == len(second["tracks"]) == 10
    assert {t["track_id"] for t in first["tracks"]}.isdisjoint(t["track_id"] for t in second["tracks"])
    style = tracks[0].style
    found = client.get("/api/tracks", params={"q": style, "limit": 100}).json()
    assert found["total"] == sum(t.style == style for t in tracks)
    assert all(t["labels"]["folder"] == style for t in found["tracks"])


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/tracks/999999", 404),
        ("/api/tracks/abc", 422),
        ("/api/tracks/999999/audio", 404),
        ("/api/tracks?limit=0", 422),
        ("/api/tracks?offset=-1", 422),
        ("/api/similar", 422),
        ("/api/similar?seed=999999", 404),
        ("/api/similar?seed=1&k=0", 422),
        ("/api/similar?seed=1&max_per_artist=0", 422),
        ("/api/path?start=1&end=999999", 404),
        ("/api/path?start=1", 422),
        ("/api/map?method=tsne", 422),
        ("/api/nothing-here", 404),
    ],
)
def test_bad_requests_get_a_4xx_and_a_one_line_json_error(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status and is_one_line_error(response)


def test_a_track_and_its_audio(client: TestClient, track_ids: list[int]) -> None:
    track = client.get(f"/api/tracks/{track_ids[0]}").json()
    data = Path(track["path"]).read_bytes()
    audio = client.get(f"/api/tracks/{track_ids[0]}/audio")
    assert audio.status_code == 200 and audio.content == data and audio.headers["accept-ranges"] == "bytes"
    assert audio.headers["content-type"].startswith("audio/") and track["playable"]


def test_range_requests_let_the_player_seek(client: TestClient, track_ids: list[int]) -> None:
    track = client.get(f"/api/tracks/{track_ids[1]}").json()
    data = Path(track["path"]).read_bytes()
    url = f"/api/tracks/{track_ids[1]}/audio"
    middle = client.get(url, headers={"Range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.content == data[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert client.get(url, headers={"Range": "bytes=-50"}).content == data[-50:]
    assert client.get(url, headers={"Range": f"bytes={len(data) - 10}-"}).content == data[-10:]
    assert client.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416


def test_similar_answers_as_recommend_does(client: TestClient, served_home, track_ids: list[int]) -> None:
    from typer.testing import CliRunner

    from musimilar.cli.app import app

    seed = track_ids[3]
    answer = client.get("/api/similar", params={"seed": seed, "k": 5}).json()
    printed = CliRunner().invoke(
        app, ["recommend", str(seed), "--k", "5", "--home", str(served_home[0]), "--format", "json"]
    )
    assert printed.exit_code == 0, printed.output
    assert answer == json.loads(printed.stdout)
    assert len(answer) == 5 and seed not in [r["track_id"] for r in answer]


def test_more_like_several_seeds_with_diversity(client: TestClient, track_ids: list[int]) -> None:
    seeds = track_ids[:2]
    answer = client.get("/api/similar", params={"seed": seeds, "k": 6, "max_per_album": 1, "exclude_same_album": True})
    assert answer.status_code == 200
    assert len(answer.json()) == 6 and not set(seeds) & {r["track_id"] for r in answer.json()}


def test_the_radio_never_repeats_a_played_track(client: TestClient, track_ids: list[int]) -> None:
    played = track_ids[:3]
    body = {"seeds": played, "seen": played, "avoid": [track_ids[5]], "count": 4, "randomness": 0.1, "rng_seed": 1}
    answer = client.post("/api/radio", json=body)
    assert answer.status_code == 200, answer.text
    chosen = [r["track_id"] for r in answer.json()]
    assert len(chosen) == 4 == len(set(chosen)) and not set(chosen) & set(played)
    assert client.post("/api/radio", json={"seeds": []}).status_code == 422
    assert client.post("/api/radio", json={"seeds": [999999]}).status_code == 404


def test_a_path_walks_from_start_to_end(client: TestClient, track_ids: list[int]) -> None:
    start, end = track_ids[0], track_ids[-1]
    answer = client.get("/api/path", params={"start": start, "end": end, "steps": 5})
    assert answer.status_code == 200, answer.text
    steps = [r["track_id"] for r in answer.json()]
    assert 1 <= len(steps) <= 7 and len(set(steps)) == len(steps)


def test_an_m3u_playlist_of_tracks(client: TestClient, track_ids: list[int]) -> None:
    answer = client.get("/api/playlist.m3u", params={"track": [track_ids[2], track_ids[0], 999999]})
    lines = answer.text.splitlines()
    assert answer.status_code == 200 and lines[0] == "#EXTM3U" and len(lines) == 5
    assert lines[2] == client.get(f"/api/tracks/{track_ids[2]}").json()["path"]


def test_the_map_is_computed_once_and_cached_in_the_home(client: TestClient, served_home) -> None:
    first = client.get("/api/map")
    assert first.status_code == 200
    payload = first.json()
    assert payload["count"] == len(served_home[2]) == len(payload["x"]) == len(payload["names"])
    assert payload["labels"]["folder"]["values"] and "PCA" in payload["caption"]
    assert list((served_home[0] / "map").glob("pca-*.npz"))
    assert client.get("/api/map").content == first.content


def outside_file(directory: Path, name: str = "outside.ogg") -> Path:
    path = directory / name
    write_audio(path, synthesise_clip(get_style("techno"), 6.0, 22050, np.random.default_rng(5)), 22050)
    return path


def test_an_uploaded_file_gets_neighbours_and_is_deleted(client: TestClient, tmp_path: Path) -> None:
    path = outside_file(tmp_path)
    answer = client.post("/api/upload", params={"k": 4}, files={"file": (path.name, path.read_bytes(), "audio/ogg")})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 4
    assert not any(client.app.state.musimilar.upload_dir.iterdir())


def test_uploads_are_capped_typed_and_checked(served_home, client_for, tmp_path: Path) -> None:
    path = outside_file(tmp_path)
    with client_for(served_home[0], options=ServeOptions(upload_limit_bytes=1000)) as small:
        too_big = small.post("/api/upload", files={"file": (path.name, path.read_bytes(), "audio/ogg")})
        assert too_big.status_code == 413 and is_one_line_error(too_big)
        text = small.post("/api/upload", files={"file": ("notes.txt", b"hello", "text/plain")})
        assert text.status_code == 415 and is_one_line_error(text)
        fake = small.post("/api/upload", files={"file": ("fake.mp3", b"not audio at all", "audio/mpeg")})
        assert fake.status_code == 422 and is_one_line_error(fake)
        assert not any(small.app.state.musimilar.upload_dir.iterdir())


def test_the_library_facade_and_the_api_agree(client: TestClient, served_home, track_ids: list[int]) -> None:
    from musimilar.library import Library

    library = Library.open(served_home[0], create=False)
    expected = [r.as_dict() for r in library.path(str(track_ids[0]), str(track_ids[9]), steps=4)]
    assert client.get("/api/path", params={"start": track_ids[0], "end": track_ids[9], "steps": 4}).json() == expected


def test_a_file_named_like_a_track_id_is_never_read(
    client: TestClient, track_ids: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id in a request names a catalog track, even where the server's working folder holds a file of that name
    (the command line reads such a file: `musimilar recommend 12` with a file called 12 here)."""
    seed, end = track_ids[2], track_ids[-2]
    before = client.get("/api/similar", params={"seed": seed, "k": 5}).json()
    monkeypatch.chdir(tmp_path)
    for name in (seed, end):
        (tmp_path / str(name)).write_bytes(b"not audio at all")
    assert client.get(f"/api/similar?seed={seed}&k=5").json() == before  # the quick route
    assert client.get(f"/api/similar?seed={seed}&k=5&k=5").json() == before  # the documented route
    radio = client.post("/api/radio", json={"seeds": [seed], "seen": [end], "avoid": [end]})
    path = client.get("/api/path", params={"start": seed, "end": end, "steps": 3})
    assert radio.status_code == path.status_code == 200, (radio.text, path.text)

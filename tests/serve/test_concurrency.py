"""The server only reads the home: a convert + embed + index running beside it neither blocks nor breaks it, and
the server answers with the new tracks afterwards, without a restart."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from musimilar.synth import write_library

NEW_TRACKS_PER_STYLE = 1


def update_library(root: Path, new_music: Path, failures: list[BaseException]) -> None:
    """What `musimilar embed NEW_MUSIC` then `musimilar index` do, in this process."""
    from musimilar.convert import convert
    from musimilar.embed import embed_library
    from musimilar.embeddings import load_embeddings
    from musimilar.home import Home
    from musimilar.index import build_index
    from musimilar.settings import load_settings

    try:
        home = Home.open(root, create=False)
        settings = load_settings(home=root, flags={"embed.device": "cpu"}, environ={})
        with home.exclusive("embed"):
            convert(home, [new_music], settings, workers=1)
            embed_library(home, device_name="cpu")
            build_index(load_embeddings(home.embeddings_dir), home.index_dir, settings.index.trees)
    except BaseException as error:  # reported by the test
        failures.append(error)


def test_reads_go_on_while_embed_writes_and_then_see_the_new_tracks(served_home, client_for, tmp_path: Path) -> None:
    root = tmp_path / "home"
    shutil.copytree(served_home[0], root)
    new_music = tmp_path / "new-music"
    styles = len({t.style for t in served_home[2]})
    new = write_library(new_music, styles=styles, per_style=NEW_TRACKS_PER_STYLE, seconds=8.0, seed=99)
    with client_for(root) as client:
        before = client.get("/api/status").json()["tracks"]["ok"]
        seed = client.get("/api/tracks", params={"limit": 1}).json()["tracks"][0]["track_id"]
        client.get("/api/map")
        failures: list[BaseException] = []
        writer = threading.Thread(target=update_library, args=(root, new_music, failures))
        writer.start()
        statuses = []
        while writer.is_alive():
            statuses.append(client.get("/api/similar", params={"seed": seed, "k": 5}).status_code)
            statuses.append(client.get("/api/tracks", params={"q": "wav"}).status_code)
            statuses.append(client.get(f"/api/tracks/{seed}/audio", headers={"Range": "bytes=0-99"}).status_code)
        writer.join()
        assert not failures, failures
        assert statuses and set(statuses) <= {200, 206}, sorted(set(statuses))
        assert client.get("/api/status").json()["tracks"]["ok"] == before + len(new)
        new_ids = {t["track_id"] for t in client.get("/api/tracks", params={"q": "new-music"}).json()["tracks"]}
        assert len(new_ids) == len(new)
        everything = client.get("/api/similar", params={"seed": seed, "k": before + len(new) - 1})
        assert everything.status_code == 200, everything.text
        # The new embeddings were picked up (near-duplicates of a better result may be left out, so not all of them).
        assert len(new_ids & {r["track_id"] for r in everything.json()}) >= len(new_ids) - 1
        assert client.get("/api/map").json()["count"] == before + len(new)

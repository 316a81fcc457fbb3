"""The map as the server sends it: the cached layout of the current embeddings, as JSON bytes held in memory."""

from __future__ import annotations

import gzip
import json
import threading

from musimilar import browse
from musimilar.embeddings import load_embeddings
from musimilar.errors import MusimilarError, NotReadyError
from musimilar.maplayout import layout_key, library_layout
from musimilar.mapview import map_payload
from musimilar.serve.state import ServerState

_computing = threading.Lock()  # one layout computed at a time; the others wait and then find it cached
GZIP_LEVEL = 3  # once per layout, not per request; 100k tracks: 0.11 s for 1.8 MB (level 6: 0.37 s for 1.6 MB)


def map_json(state: ServerState, method: str) -> bytes:
    """The gzipped JSON of `/api/map` for the embeddings on disk now (recomputed only when they change)."""
    table = load_embeddings(state.home_root / "embeddings")
    if table is None or len(table) == 0:
        raise NotReadyError(f"{state.home_root}: no embeddings yet, so no map (run `musimilar embed`)")
    key = layout_key(table, method) if method in ("pca", "umap") else method
    cached = state.cached_map(method, key)
    if cached is not None:
        return cached
    with _computing:
        cached = state.cached_map(method, key)
        if cached is not None:
            return cached
        layout = library_layout(state.home_root, table, method)
        tracks = browse.get_tracks(state.catalog(), layout.track_ids.tolist())
        payload = map_payload(layout, tracks).as_dict()
        encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        compressed = gzip.compress(encoded, GZIP_LEVEL)
        state.store_map(method, layout.key, compressed)
        return compressed


def warm_map(state: ServerState, method: str = "pca") -> None:
    """Build the map's payload on a library worker as a server process starts, so that the first click on the Map
    tab finds it built (100,000 tracks: one to two seconds of one core, once per process)."""

    def build() -> None:
        try:
            map_json(state, method)
        except MusimilarError:
            pass  # no embeddings yet: the page says so when it asks for the map

    state.in_background(build)

"""What a library home holds, and whether each part is up to date (`musimilar info`)."""

from __future__ import annotations

import datetime
from typing import Any

from musimilar.cache import CACHE_KEY, cache_size_bytes
from musimilar.catalog import Catalog
from musimilar.home import Home
from musimilar.model_card import model_summary, read_card


def home_status(home: Home) -> dict[str, Any]:
    """A JSON-ready description of the home; `summary` holds one line per part for people."""
    with Catalog(home.catalog_path) as catalog:
        counts = catalog.status_counts()
        failures = [{"path": p, "error": e} for p, e in catalog.failures()]
        live = catalog.live_versions()
        cache_key = catalog.get_meta(CACHE_KEY)
    cache_bytes = cache_size_bytes(home.cache_dir / cache_key) if cache_key else 0
    status: dict[str, Any] = {
        "home": str(home.root),
        "tracks": {
            "ok": counts.get("ok", 0),
            "failed": counts.get("failed", 0),
            "pending": counts.get("pending", 0),
            "missing": counts.get("missing", 0),
            "failures": failures,
        },
        "cache": {"bytes": cache_bytes, "key": cache_key},
        "model": _model_status(home),
        "embeddings": None,
        "index": None,
    }
    status["embeddings"] = _embeddings_status(home, status["model"], live)
    status["index"] = _index_status(home, status["embeddings"])
    status["summary"] = _summary(status)
    return status


def _model_status(home: Home) -> dict[str, Any] | None:
    """The current model's summary, from its card when the card describes the file (no torch), else the file."""
    path = home.current_model_path
    if not path.is_file():
        return None
    card = read_card(path)
    if card is not None and card.summary is not None:
        return {"path": str(path), "fingerprint": card.fingerprint, **card.summary}
    from musimilar.checkpoint import read_model_file

    payload = read_model_file(path)
    return {"path": str(path), "fingerprint": payload["fingerprint"], **model_summary(payload)}


def _embeddings_status(home: Home, model: dict[str, Any] | None, live: dict[int, int]) -> dict[str, Any] | None:
    from musimilar.embeddings import load_embeddings

    table = load_embeddings(home.embeddings_dir)
    if table is None:
        return None
    missing = len(live) - len(table.live(live))
    same_model = model is not None and model["fingerprint"] == table.model_fingerprint
    return {
        "count": len(table),
        "dim": table.dim,
        "model_fingerprint": table.model_fingerprint,
        "same_model": same_model,
        "tracks_not_embedded": missing,
        "up_to_date": same_model and missing == 0,
    }


def _index_status(home: Home, embeddings: dict[str, Any] | None) -> dict[str, Any] | None:
    from musimilar.embeddings import load_embeddings
    from musimilar.index import load_index_info

    info = load_index_info(home.index_dir)
    if info is None:
        return None
    same = embeddings is not None and embeddings["model_fingerprint"] == info.model_fingerprint
    outside = None
    if same:
        table = load_embeddings(home.embeddings_dir)
        indexed = set(zip(info.item_track_ids.tolist(), info.item_versions.tolist()))
        outside = sum((int(i), int(v)) not in indexed for i, v in zip(table.track_ids, table.versions))
        outside += len(indexed) - (len(table) - outside)  # items of removed or changed tracks
    return {
        "count": info.count,
        "trees": info.trees,
        "built_at": info.built_at,
        "model_fingerprint": info.model_fingerprint,
        "same_model": same,
        "tracks_differing": outside,
        "up_to_date": same and outside == 0,
    }


def _summary(status: dict[str, Any]) -> dict[str, str]:
    tracks = status["tracks"]
    return {
        "tracks": f"{tracks['ok']} ok, {tracks['failed']} failed, {tracks['pending']} pending, "
        f"{tracks['missing']} missing",
        "cache": f"{status['cache']['bytes'] / 1e6:.1f} MB",
        "model": _model_line(status["model"]),
        "embeddings": _embeddings_line(status["embeddings"]),
        "index": _index_line(status["index"]),
    }


def _model_line(model: dict[str, Any] | None) -> str:
    if model is None:
        return "none (run `musimilar train DIR`)"
    score = model["val_segment_top1"]
    when = (
        datetime.datetime.fromtimestamp(model["trained_at"]).strftime("%Y-%m-%d %H:%M") if model["trained_at"] else "?"
    )
    return (
        f"{model['fingerprint']} ({model['size']}, {model['epochs']} epochs, trained {when}"
        + (f", validation segment retrieval {score:.3f}" if score is not None else "")
        + ")"
    )


def _embeddings_line(embeddings: dict[str, Any] | None) -> str:
    if embeddings is None:
        return "none (run `musimilar embed`)"
    if embeddings["up_to_date"]:
        state = "up to date"
    elif not embeddings["same_model"]:
        state = "another model: run `musimilar embed`"
    else:
        state = f"{embeddings['tracks_not_embedded']} tracks not embedded: run `musimilar embed`"
    return f"{embeddings['count']} tracks, {embeddings['dim']}-d, {state}"


def _index_line(index: dict[str, Any] | None) -> str:
    if index is None:
        return "none (run `musimilar index`)"
    if index["up_to_date"]:
        state = "up to date"
    elif not index["same_model"]:
        state = "another model: run `musimilar index`"
    else:
        state = (
            f"{index['tracks_differing']} tracks added, changed or removed since the build (searched exactly "
            "meanwhile); `musimilar index` rebuilds it"
        )
    return f"{index['count']} tracks, {index['trees']} trees, {state}"

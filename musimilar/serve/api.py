"""The JSON API under /api/: the same answers, and the same schemas, as the CLI's `--format json`.

Every track is named by its catalog id; no path from a request ever reaches the file system (an upload is written
under a name the server makes up, in its private temporary folder).
"""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from musimilar import browse
from musimilar.serve.state import PLAYABLE_SUFFIXES, UPLOAD_SUFFIXES, ServerState

router = APIRouter(prefix="/api")
MAX_K = 200
MAX_SEEDS = 50
MAX_PATH_STEPS = 100
UPLOAD_CHUNK_BYTES = 1 << 20
AUDIO_TYPES = {".opus": "audio/ogg", ".oga": "audio/ogg", ".flac": "audio/flac", ".m4a": "audio/mp4"}


async def state_of(request: Request) -> ServerState:
    # async, as every dependency here: FastAPI runs a plain function dependency on a worker thread, per request
    return request.app.state.musimilar


State = Annotated[ServerState, Depends(state_of)]


class DiversityQuery(BaseModel):
    """The diversity switches of `musimilar recommend`."""

    exclude_same_album: bool = False
    max_per_artist: int | None = Field(None, ge=1)
    max_per_album: int | None = Field(None, ge=1)

    def as_diversity(self) -> Any:
        from musimilar.recommend import Diversity

        return Diversity(self.exclude_same_album, self.max_per_artist, self.max_per_album)


class RadioRequest(DiversityQuery):
    seeds: list[int] = Field(min_length=1, max_length=MAX_SEEDS)
    seen: list[int] = Field(default_factory=list, max_length=10_000)
    avoid: list[int] = Field(default_factory=list, max_length=1_000)
    count: int = Field(1, ge=1, le=MAX_K)
    randomness: float = Field(0.0, ge=0.0, le=1.0)
    rng_seed: int | None = None


@router.get("/status")
async def status(state: State) -> dict[str, Any]:
    """What `musimilar info --format json` prints."""
    return await state.call(lambda library: library.status())


@router.get("/tracks")
def tracks(
    state: State,
    q: str = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=browse.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """A page of the library's tracks, those whose path or labels contain every word of `q`."""
    return browse.search_tracks(state.catalog(), q, offset, limit).as_dict()


@router.get("/tracks/{track_id}")
def track(state: State, track_id: int) -> dict[str, Any]:
    entry = _track_or_404(state, track_id)
    return {**entry.as_dict(), "playable": Path(entry.path).suffix.lower() in PLAYABLE_SUFFIXES}


@router.get("/tracks/{track_id}/audio")
def audio(state: State, track_id: int) -> Response:
    """The track's file as it is (HTTP Range requests honoured, so the player can seek)."""
    entry = _track_or_404(state, track_id)
    path = Path(entry.path)
    if not path.is_file():
        raise HTTPException(410, f"track {track_id}: its file is gone ({path.name})")
    suffix = path.suffix.lower()
    media_type = AUDIO_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, content_disposition_type="inline", filename=path.name)


@router.get("/similar")
async def similar(
    request: Request,
    seed: Annotated[list[int], Query(min_length=1, max_length=MAX_SEEDS)],
    diversity: Annotated[DiversityQuery, Query()],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
) -> Response:
    """The k tracks most like the seeds taken together: `musimilar recommend ID... --format json`."""
    return await similar_answer(request.app.state.musimilar, seed, k, diversity)


async def similar_answer(state: ServerState, seeds: list[int], k: int, diversity: DiversityQuery) -> Response:
    """The answer of /api/similar (musimilar/serve/quick.py parses the common requests, the route above the rest)."""
    rules = diversity.as_diversity()  # ids as ints: a track id, never a file of that name
    results = await state.call(
        lambda library: _check_ids(state, library, seeds) or library.recommend(seeds, k=k, diversity=rules),
        quick=len(seeds) == 1,  # answered from the seed's neighbour list: no search
    )
    return results_json(results)


@router.post("/radio")
async def radio(state: State, body: RadioRequest) -> Response:
    """The next `count` tracks of a radio after `seeds` and the tracks already played (`seen`)."""
    results = await state.call(
        lambda library: (
            _check_ids(state, library, body.seeds)
            or library.radio(
                body.seeds,
                count=body.count,
                seen=body.seen,
                diversity=body.as_diversity(),
                randomness=body.randomness,
                rng_seed=body.rng_seed,
                avoid=body.avoid,
            )
        )
    )
    return results_json(results)


@router.get("/path")
async def path(
    state: State,
    start: int,
    end: int,
    diversity: Annotated[DiversityQuery, Query()],
    steps: Annotated[int, Query(ge=1, le=MAX_PATH_STEPS)] = 10,
) -> Response:
    """`steps` tracks from `start` to `end`: `musimilar path START END --format json`."""
    rules = diversity.as_diversity()
    results = await state.call(
        lambda library: (
            _check_ids(state, library, [start, end]) or library.path(start, end, steps=steps, diversity=rules)
        )
    )
    return results_json(results)


@router.get("/playlist.m3u")
def playlist(state: State, track: Annotated[list[int], Query(min_length=1, max_length=10_000)]) -> Response:
    """An m3u playlist of the given tracks, in order (what `musimilar recommend --format m3u` writes)."""
    found = browse.get_tracks(state.catalog(), track)
    lines = ["#EXTM3U"] + [f"#EXTINF:-1,{Path(found[t].path).stem}\n{found[t].path}" for t in track if t in found]
    return PlainTextResponse(
        "\n".join(lines) + "\n",
        media_type="audio/x-mpegurl",
        headers={"Content-Disposition": 'attachment; filename="musimilar.m3u"'},
    )


@router.get("/map")
def library_map(state: State, request: Request, method: str = "pca") -> Response:
    """The map's points (see musimilar.mapview.MapPayload), computed once per set of embeddings."""
    import gzip

    from musimilar.serve.mapping import map_json

    compressed = map_json(state, method)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(compressed, media_type="application/json", headers={"Content-Encoding": "gzip"})
    return Response(gzip.decompress(compressed), media_type="application/json")


@router.post("/upload")
async def upload(state: State, request: Request, file: UploadFile, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10):
    """Neighbours of an audio file from outside the library; the file is deleted when the answer is ready."""
    limit = state.options.upload_limit_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + UPLOAD_CHUNK_BYTES:
        raise HTTPException(413, f"upload too large: the limit is {limit // (1024 * 1024)} MiB")
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        accepted = ", ".join(sorted(UPLOAD_SUFFIXES))
        raise HTTPException(415, f"{file.filename}: not an audio type the server takes ({accepted})")
    target = state.upload_dir / f"{secrets.token_hex(8)}{suffix}"
    try:
        await _save_capped(file, target, limit)
        results = await state.call(lambda library: library.recommend([str(target)], k=k))
        return results_json(results)
    finally:
        target.unlink(missing_ok=True)


async def _save_capped(file: UploadFile, target: Path, limit: int) -> None:
    written = 0
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        while chunk := await file.read(UPLOAD_CHUNK_BYTES):
            written += len(chunk)
            if written > limit:
                raise HTTPException(413, f"upload too large: the limit is {limit // (1024 * 1024)} MiB")
            stream.write(chunk)


def results_json(results: list[Any]) -> Response:
    """A list of recommendations as the CLI's `--format json` prints it, encoded once (FastAPI would otherwise
    validate and convert the list again through a pydantic model of `dict[str, Any]`)."""
    encoded = json.dumps([r.as_dict() for r in results], ensure_ascii=False, separators=(",", ":"))
    return Response(encoded.encode("utf-8"), media_type="application/json")


def _track_or_404(state: ServerState, track_id: int) -> browse.TrackEntry:
    entry = browse.get_track(state.catalog(), track_id)
    if entry is None:
        raise HTTPException(404, f"track {track_id}: not in the catalog")
    return entry


def _check_ids(state: ServerState, library: Any, track_ids: list[int]) -> None:
    """404 for the first id that is not a converted track: ids with a vector in the library's embeddings are, the
    others are looked up in the catalog."""
    if library.embedded(track_ids):
        return
    found = browse.get_tracks(state.catalog(), list(dict.fromkeys(track_ids)))
    missing = [t for t in track_ids if t not in found]
    if missing:
        raise HTTPException(404, f"track {missing[0]}: not in the catalog")

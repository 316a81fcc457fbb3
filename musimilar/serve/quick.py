"""`GET /api/similar`, the request a page, a player or a script sends most, parsed without FastAPI's machinery.

Its answer is a lookup in the seed's neighbour list, 0.3 ms on a 2-core VM; through FastAPI's routing, dependency
solving and parameter validation the whole app took 0.6 ms, through this route 0.46-0.54 ms (bench/serve_app.py).
It reads the query strictly, as the documented route would: an unknown parameter, a repeated one, a value out of
range or not a plain number, is handed to the documented FastAPI route itself, which validates it and answers or
refuses as always. Both answer through `api.similar_answer`; /docs shows the documented one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.routing import Route

from musimilar.serve.api import MAX_K, MAX_SEEDS, DiversityQuery, similar_answer

PATH = "/api/similar"
TRUE_WORDS = {"true", "1", "yes", "on"}  # what pydantic reads as a bool (any case), the rest are handed on
FALSE_WORDS = {"false", "0", "no", "off"}
LARGEST_ID = 2**63 - 1  # SQLite's integers


def quick_similar_route(documented: Any) -> Route:
    """A route for PATH that answers well-formed queries itself and hands the others to `documented` (the
    FastAPI route); put it before the API's router."""
    return Route(PATH, _QuickSimilar(documented), methods=["GET"], include_in_schema=False)


class _QuickSimilar:
    """The route's ASGI app."""

    def __init__(self, documented: Any) -> None:
        self.documented = documented

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        parsed = parse_similar(scope.get("query_string", b"")) if scope["method"] == "GET" else None
        if parsed is None:
            await self.documented.handle(scope, receive, send)
            return
        seeds, k, diversity = parsed
        response: Response = await similar_answer(scope["app"].state.musimilar, seeds, k, diversity)
        await response(scope, receive, send)


def parse_similar(query_string: bytes) -> tuple[list[int], int, DiversityQuery] | None:
    """(seeds, k, diversity) of a well-formed query, or None for anything the documented route must judge."""
    seeds: list[int] = []
    values: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "seed" and _is_id(value):
            seeds.append(int(value))
        elif key in ("k", "max_per_artist", "max_per_album", "exclude_same_album") and key not in values:
            values[key] = value
        else:
            return None
    k = _count(values.get("k", "10"), MAX_K)
    artist, album = (_count(values[key], None) if key in values else 0 for key in ("max_per_artist", "max_per_album"))
    same_album = values.get("exclude_same_album", "false").lower()
    if not 1 <= len(seeds) <= MAX_SEEDS or k is None or artist is None or album is None:
        return None
    if same_album not in TRUE_WORDS | FALSE_WORDS:
        return None
    diversity = DiversityQuery(
        exclude_same_album=same_album in TRUE_WORDS, max_per_artist=artist or None, max_per_album=album or None
    )
    return seeds, k, diversity


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) <= LARGEST_ID


def _count(value: str, largest: int | None) -> int | None:
    """A whole number from 1 to `largest` (no bound: None), written plainly, or None."""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number >= 1 and (largest is None or number <= largest) else None

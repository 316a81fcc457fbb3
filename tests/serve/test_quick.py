"""`GET /api/similar` answered by the quick route: the same answers and the same refusals as the documented one."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from musimilar.serve.quick import parse_similar


@pytest.mark.parametrize(
    ("query", "seeds", "k", "rules"),
    [
        (b"seed=7", [7], 10, (False, None, None)),
        (b"seed=7&k=25", [7], 25, (False, None, None)),
        (b"seed=7&seed=9&k=5&exclude_same_album=true&max_per_artist=2&max_per_album=1", [7, 9], 5, (True, 2, 1)),
        (b"k=3&seed=0012&exclude_same_album=Off", [12], 3, (False, None, None)),
    ],
)
def test_well_formed_queries_are_read(query: bytes, seeds: list[int], k: int, rules: tuple) -> None:
    parsed = parse_similar(query)
    assert parsed is not None
    assert parsed[0] == seeds and parsed[1] == k
    assert (parsed[2].exclude_same_album, parsed[2].max_per_artist, parsed[2].max_per_album) == rules


@pytest.mark.parametrize(
    "query",
    [
        b"",  # no seed
        b"seed=7&k=0",
        b"seed=7&k=201",
        b"seed=7&k=5&k=6",  # repeated
        b"seed=-7",
        b"seed=%C2%B2",  # a digit, but not a plain one
        b"seed=99999999999999999999",  # beyond SQLite's integers
        b"seed=7&max_per_artist=0",
        b"seed=7&exclude_same_album=maybe",
        b"seed=7&format=m3u",  # unknown
        b"&".join(b"seed=%d" % n for n in range(51)),  # more seeds than allowed
    ],
)
def test_anything_else_is_left_to_the_documented_route(query: bytes) -> None:
    assert parse_similar(query) is None


def test_both_routes_give_the_same_answer(client: TestClient, track_ids: list[int]) -> None:
    seed = track_ids[4]
    quick = client.get(f"/api/similar?seed={seed}&k=6")
    documented = client.get(f"/api/similar?seed={seed}&k=6&k=6")  # a repeated k: the documented route answers
    assert quick.status_code == documented.status_code == 200
    assert quick.json() == documented.json() and len(quick.json()) == 6
    assert quick.headers["content-type"] == documented.headers["content-type"] == "application/json"


def test_refusals_are_the_documented_ones(client: TestClient) -> None:
    missing = client.get("/api/similar?seed=999999")  # well-formed: the quick route says there is no such track
    assert missing.status_code == 404 and missing.json() == {"error": "track 999999: not in the catalog"}
    assert client.get("/api/similar?seed=1&k=0").json() == {"error": "k: Input should be greater than or equal to 1"}
    assert client.head("/api/similar?seed=1").status_code == 405  # GET only, as documented


def test_the_documented_route_is_the_one_in_the_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    parameters = {p["name"] for p in schema["paths"]["/api/similar"]["get"]["parameters"]}
    assert {"seed", "k", "exclude_same_album", "max_per_artist", "max_per_album"} <= parameters

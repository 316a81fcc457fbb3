"""What the web framework adds to a similar-tracks answer: the app called in process, no sockets, no uvicorn.

    python bench/serve_app.py --home HOME [--requests 4000] [--repeats 3]

HOME: a home with an index (bench/serve.py makes a 100,000-track one under .bench/serve). One caller asks for the
k=10 neighbours of random library tracks, in turn, through:

- `Library.recommend`: the answer itself, the baseline (1.00x);
- `GET /api/similar?seed=ID&k=10` through the whole ASGI app: the quick route (musimilar/serve/quick.py) answers;
- the same through an app without the quick route, FastAPI's routing and validation (what every answer cost
  before the quick route);
- `k` given twice, which the quick route hands on to the documented FastAPI route (a query it does not read).

The ways are taken in turn, --repeats times; the best run of each is printed, in microseconds an answer and as a
ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path
from typing import Any


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


async def get(app: Any, path: str, query: str) -> None:
    """One GET through the ASGI app; fails unless it answers 200."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


async def best_of(repeats: int, asks: dict[str, Any], seeds: list[int]) -> dict[str, float]:
    """Fewest seconds an answer of each way of asking over `repeats` runs through all of `seeds`, the ways taken in
    turn within each repeat (this VM's speed drifts over minutes), after one run of each to warm up."""
    times: dict[str, list[float]] = {name: [] for name in asks}
    for _ in range(repeats + 1):
        for name, ask in asks.items():
            started = time.perf_counter()
            for seed in seeds:
                await ask(seed)
            times[name].append((time.perf_counter() - started) / len(seeds))
    return {name: min(values[1:]) for name, values in times.items()}


async def measure(args: argparse.Namespace) -> dict[str, float]:
    from musimilar.library import Library
    from musimilar.serve.app import create_app

    def open_library() -> Library:
        return Library.open(args.home, create=False)

    library = open_library()
    library.ready()
    app = create_app(open_library, library=library)
    without = create_app(open_library, library=library)
    without.router.routes = [route for route in without.router.routes if not is_quick(route)]
    count = len(library.ready().table)
    ids = library.ready().table.track_ids
    rng = random.Random(args.seed)
    seeds = [int(ids[rng.randrange(count)]) for _ in range(args.requests)]

    async def direct(seed: int) -> None:
        library.recommend([str(seed)], k=10)

    async def quick(seed: int) -> None:
        await get(app, "/api/similar", f"seed={seed}&k=10")

    async def framework(seed: int) -> None:
        await get(without, "/api/similar", f"seed={seed}&k=10")

    async def handed_on(seed: int) -> None:
        await get(app, "/api/similar", f"seed={seed}&k=10&k=10")

    asks = {
        "Library.recommend, in process": direct,
        "GET /api/similar, the quick route": quick,
        "GET /api/similar, no quick route": framework,
        "GET /api/similar, handed on (k twice)": handed_on,
    }
    return await best_of(args.repeats, asks, seeds)


def is_quick(route: Any) -> bool:
    from fastapi.routing import APIRoute

    from musimilar.serve.quick import PATH

    return getattr(route, "path", None) == PATH and not isinstance(route, APIRoute)


def main() -> None:
    args = parse_arguments()
    figures = asyncio.run(measure(args))
    baseline = next(iter(figures.values()))
    print(f"one caller, {args.requests} random library tracks, k=10, best of {args.repeats} runs:")
    for name, seconds in figures.items():
        print(f"  {name:<40} {seconds * 1e6:7.0f} us an answer   {seconds / baseline:5.2f}x")


if __name__ == "__main__":
    main()

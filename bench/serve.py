"""Speed of `musimilar serve` on a large library: similar tracks under concurrent clients, search, and the map.

    python bench/serve.py --model-from DEMO_HOME [--tracks 100000] [--clients 50] [--requests 4000] [--rounds 3]
                          [--workers 1]

A home of --tracks synthetic tracks is made under --workdir: a catalog (clustered labels, no audio files), clustered
embeddings of the model copied from --model-from (any trained home: `musimilar demo` makes one), the Annoy
index and the neighbour lists (`musimilar index`). Then `musimilar serve --workers N` is started on loopback and
measured:

- similar tracks (`/api/similar?seed=ID&k=10`) from --clients concurrent clients (threads with a kept-alive
  connection each, see timed_gets), p50/p99 over --rounds rounds and in each (with the server's CPU time per
  answer: the load generator runs on the same cores), beside the same call in one process without HTTP
  (`Library.recommend`, what the CLI runs after its start-up) and the whole `musimilar recommend ID` command in a
  new process (bench/serve_app.py takes the app's own share apart);
- library search (`/api/tracks?q=WORD`), a deep page (`offset` near the end) and `/api/status`, p50/p99 from one
  client;
- the map: payload size (raw and gzip), the time to build it in process (the layout computed, then cached), the
  first request to the server (which builds it as a process starts) and the next, and, when Chromium and Playwright
  are installed, time from a click on the Map tab to the drawn WebGL plot.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

GENRES = 40
ARTISTS_PER_GENRE = 50
WARM_UP_SECONDS = 8.0  # and each server process builds the map meanwhile (one to two seconds)
SEARCH_WORDS = ("genre-07", "artist-0123", "album", "track-04242", "zzz-nothing")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-from", type=Path, required=True, help="a trained home whose model is reused")
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4000, help="similar-track requests in a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --requests (this machine's noise shows)")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--workers", type=int, default=1, help="server processes (`musimilar serve --workers`)")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/serve"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_home(args: argparse.Namespace) -> Path:
    """A home of synthetic tracks: catalog rows, clustered embeddings of the borrowed model, an index."""
    from musimilar.catalog import Catalog
    from musimilar.embeddings import EmbeddingTable, load_embeddings, normalise_rows, save_embeddings
    from musimilar.home import Home
    from musimilar.indexing import index_home
    from musimilar.settings import load_settings

    root = args.workdir / f"home-{args.tracks}"
    if (root / "index" / "index.json").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "models").mkdir(parents=True)
    for name in ("current.pt", "current.pt.card.json"):  # the card: a track-id query needs no torch
        if (args.model_from / "models" / name).is_file():
            shutil.copy(args.model_from / "models" / name, root / "models" / name)
    source = load_embeddings(args.model_from / "embeddings")
    assert source is not None, f"{args.model_from}: no embeddings"
    rng = np.random.default_rng(args.seed)
    genre = rng.integers(0, GENRES, args.tracks)
    artist = genre * ARTISTS_PER_GENRE + rng.integers(0, ARTISTS_PER_GENRE, args.tracks)
    Catalog(root / "catalog.sqlite").close()
    rows = [
        (
            i + 1,
            f"/music/genre-{genre[i]:02d}/artist-{artist[i]:04d}/album-{artist[i] % 7}/track-{i:05d}.ogg",
            json.dumps(
                {
                    "folder": f"album-{artist[i] % 7}",
                    "genre": f"genre-{genre[i]:02d}",
                    "artist": f"artist-{artist[i]:04d}",
                    "album": f"album-{artist[i]}-{artist[i] % 7}",
                }
            ),
        )
        for i in range(args.tracks)
    ]
    with sqlite3.connect(root / "catalog.sqlite") as db:
        db.executemany(
            "INSERT INTO tracks (id, path, size, mtime_ns, fingerprint, status, labels, duration, added_at, updated_at)"
            " VALUES (?, ?, 1000, 0, 'synthetic-' || ?, 'ok', ?, 180.0, 0, 0)",
            [(i, path, i, labels) for i, path, labels in rows],
        )
    centres = normalise_rows(rng.normal(size=(GENRES * ARTISTS_PER_GENRE, source.dim)))
    vectors = normalise_rows(centres[artist] + 0.6 * normalise_rows(rng.normal(size=(args.tracks, source.dim))))
    table = EmbeddingTable(np.arange(1, args.tracks + 1), vectors, source.model_fingerprint, np.ones(args.tracks))
    save_embeddings(root / "embeddings", table)
    report = index_home(Home.open(root, create=False), load_settings(environ={}).index)  # the index and the lists
    print(f"index and neighbour lists built in {report.seconds:.0f} s")
    return root


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


def timed_gets(port: int, paths: list[str], results: list[float], failures: list[str]) -> None:
    """GET each of `paths` in turn on one kept-alive connection, appending each answer's seconds to `results`.

    A plain socket, not http.client: http.client parses every answer's headers through the email package, 0.2 ms
    of CPU per request on a 2-core VM against 0.07 ms here, and the 50 clients share the GIL and the server's
    cores. The load generator should not be what is measured."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for path in paths:
            started = time.perf_counter()
            connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("ascii"))
            status = read_answer(connection)
            results.append(time.perf_counter() - started)
            if status != 200:
                failures.append(f"{status} {path}")


def read_answer(connection: socket.socket) -> int:
    """Read one whole answer (its length from Content-Length, which the server always sends); its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += receive(connection)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    if "content-length" not in fields:
        raise SystemExit(f"an answer without Content-Length: {lines[0]} {fields}")
    length = int(fields["content-length"])
    while len(body) < length:
        body += receive(connection)
    return int(lines[0].split()[1])


def receive(connection: socket.socket) -> bytes:
    chunk = connection.recv(1 << 16)
    if not chunk:
        raise SystemExit("the server closed the connection")
    return chunk


def concurrent_similar(
    args: argparse.Namespace, clients: int, requests: int, seed: int
) -> tuple[list[float], float, list[str]]:
    rng = random.Random(seed)
    plans = [
        [f"/api/similar?seed={rng.randint(1, args.tracks)}&k=10" for _ in range(requests // clients)]
        for _ in range(clients)
    ]
    results: list[float] = []
    failures: list[str] = []
    threads = [threading.Thread(target=timed_gets, args=(args.port, plan, results, failures)) for plan in plans]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started, failures


def served_rounds(args: argparse.Namespace, server: int) -> tuple[list[str], list[float], list[str]]:
    """--rounds runs of the concurrent similar-track load: a line each (percentiles, answers a second, the server's
    CPU time per answer), every round's latencies together, and the failures."""
    lines: list[str] = []
    everything: list[float] = []
    failures: list[str] = []
    for round_number in range(args.rounds):
        cpu_before = process_tree_cpu(server)
        served, wall, failed = concurrent_similar(args, args.clients, args.requests, args.seed + 10 * round_number)
        cpu = (process_tree_cpu(server) - cpu_before) / len(served) if cpu_before is not None else None
        cpu_text = "" if cpu is None else f", server CPU {cpu * 1000:.2f} ms an answer"
        lines.append(f"round {round_number + 1}: {percentiles(served)}   {len(served) / wall:.0f}/s{cpu_text}")
        everything += served
        failures += failed
    return lines, everything, failures


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by process `pid` and its descendants (the server's workers); None off Linux."""
    used: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = path.read_text()
        except OSError:
            continue  # a process that ended meanwhile
        fields = text.rsplit(")", 1)[-1].split()  # after the command's name, which may hold spaces
        own = int(path.parent.name)
        used[own] = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        children.setdefault(int(fields[1]), []).append(own)
    if pid not in used:
        return None
    tree, waiting = [], [pid]
    while waiting:
        tree.append(waiting.pop())
        waiting += children.get(tree[-1], [])
    return sum(used[own] for own in tree) / os.sysconf("SC_CLK_TCK")


def warm_up(args: argparse.Namespace) -> None:
    """Load for WARM_UP_SECONDS, so that every server process has started (the first answer came from one of
    them) and every library thread has opened its library."""
    started = time.perf_counter()
    while time.perf_counter() - started < WARM_UP_SECONDS:
        concurrent_similar(args, clients=10, requests=200, seed=args.seed + 2)


def in_process_similar(root: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    from musimilar.library import Library

    library = Library.open(root, create=False)
    started = time.perf_counter()
    library.ready()
    opened = time.perf_counter() - started
    rng = random.Random(args.seed + 1)
    times = []
    for _ in range(min(1000, args.requests)):
        seed = str(rng.randint(1, args.tracks))
        started = time.perf_counter()
        library.recommend([seed], k=10)
        times.append(time.perf_counter() - started)
    return times, opened


def cold_command(root: Path) -> float:
    """Seconds of one `musimilar recommend ID --format json` in a new process (what a script pays without serve)."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "musimilar", "recommend", "1", "--home", str(root), "--format", "json"]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def in_process_map(root: Path) -> tuple[float, float]:
    """Seconds to build the map's payload (what a server process does once) with the layout computed, then with
    it read from the home's cache."""
    from musimilar.library import Library
    from musimilar.serve.mapping import map_json
    from musimilar.serve.state import ServeOptions, ServerState

    seconds = []
    for _ in range(2):
        state = ServerState(lambda: Library.open(root, create=False), ServeOptions(library_workers=1))
        if not seconds:
            shutil.rmtree(root / "map", ignore_errors=True)
        started = time.perf_counter()
        map_json(state, "pca")
        seconds.append(time.perf_counter() - started)
        state.close()
    return seconds[0], seconds[1]


def map_figures(port: int) -> tuple[float, int, int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", "/api/map")
    body = connection.getresponse().read()
    first = time.perf_counter() - started
    started = time.perf_counter()
    connection.request("GET", "/api/map", headers={"Accept-Encoding": "gzip"})
    zipped = connection.getresponse().read()
    cached = time.perf_counter() - started
    return first, len(body), len(zipped) if zipped[:2] == b"\x1f\x8b" else len(gzip.compress(body)), cached


def first_paint(port: int) -> float | None:
    """Seconds from a click on the Map tab to the drawn plot, in headless Chromium; None without a browser."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    arguments = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=arguments)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#tracks-table tr.track-row")
        started = time.perf_counter()
        page.click("#tab-map")
        page.wait_for_selector("#map-plot[data-ready='1'] canvas")
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def start_server(root: Path, port: int, workers: int) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MUSIMILAR_")}
    command = [sys.executable, "-m", "musimilar", "serve", "--home", str(root), "--port", str(port)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/tracks?limit=1")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    args = parse_arguments()
    started = time.perf_counter()
    root = make_home(args)
    print(f"home: {args.tracks} synthetic tracks under {root} ({time.perf_counter() - started:.0f} s to make)")
    direct, opened = in_process_similar(root, args)
    cold = cold_command(root)
    built = in_process_map(root)  # leaves the layout cached: a server process then builds only the payload
    process = start_server(root, args.port, args.workers)
    try:
        warm_up(args)
        rounds, served, failures = served_rounds(args, process.pid)
        searches: dict[str, list[float]] = {}
        for word in SEARCH_WORDS:
            searches[word] = []
            timed_gets(
                args.port,
                [f"/api/tracks?q={word}&limit=50"] * (args.searches // len(SEARCH_WORDS)),
                searches[word],
                failures,
            )
        deep: list[float] = []
        timed_gets(args.port, [f"/api/tracks?offset={args.tracks - 60}&limit=50"] * 50, deep, failures)
        status: list[float] = []
        timed_gets(args.port, ["/api/status"] * 10, status, failures)
        map_first, map_bytes, map_gzip, map_cached = map_figures(args.port)
        paint = first_paint(args.port)
    finally:
        process.terminate()
        process.wait(timeout=20)
    direct_p50 = statistics.median(direct)
    print(
        f"similar tracks, k=10 ({args.tracks} tracks; opening model + embeddings + index {opened * 1000:.0f} ms; "
        f"served by {args.workers} process{'es' if args.workers > 1 else ''}):"
    )
    print(f"  Library.recommend, in process, 1 caller      {percentiles(direct)}   1.00x p50")
    print(
        f"  GET /api/similar, {args.clients} concurrent clients   {percentiles(served)}   "
        f"{statistics.median(served) / direct_p50:.2f}x p50   ({len(served)} requests in {args.rounds} rounds)"
    )
    for line in rounds:
        print(f"    {line}")
    print(
        f"  musimilar recommend ID, a new process          {cold * 1000:7.0f} ms once   "
        f"{cold / statistics.median(served):.0f}x the served p50"
    )
    print("library search, one client:")
    for word, times in searches.items():
        print(f"  GET /api/tracks?q={word:<12}             {percentiles(times)}")
    print(f"  GET /api/tracks?offset={args.tracks - 60} (no text)      {percentiles(deep)}")
    print(f"  GET /api/status (the page asks on load)    {percentiles(status)}")
    print(
        f"map of {args.tracks} tracks: payload {map_bytes / 1e6:.1f} MB ({map_gzip / 1e6:.1f} MB gzip); "
        f"built in process {built[0]:.2f} s with the layout (PCA) computed, {built[1]:.2f} s from the cached layout"
    )
    print(
        f"  served: first request {map_first:.2f} s (each server process builds it as it starts), then "
        f"{map_cached * 1000:.0f} ms"
    )
    print(
        f"  first paint in headless Chromium, click to drawn plot: "
        f"{'n/a (no chromium/playwright)' if paint is None else f'{paint:.2f} s'}"
    )
    if failures:
        print(f"failures: {len(failures)}, e.g. {failures[:3]}")


if __name__ == "__main__":
    main()

"""Where the server runs a library job: quick ones on the event loop while its library is current, others on a
worker thread."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

from musimilar.library import Library
from musimilar.serve.state import ServeOptions, ServerState


def thread_of_job(state: ServerState, quick: bool) -> str:
    async def ask() -> str:
        return await state.call(lambda library: threading.current_thread().name, quick=quick)

    return asyncio.run(ask())


def wait_for_loop_library(state: ServerState) -> None:
    deadline = time.monotonic() + 60
    while state._loop is None or not state._loop.is_current():
        assert time.monotonic() < deadline, "the loop's library was never opened"
        time.sleep(0.05)


def test_quick_jobs_run_on_the_loop_only_while_its_library_is_current(served_home, tmp_path: Path) -> None:
    root = Path(shutil.copytree(served_home[0], tmp_path / "home"))
    state = ServerState(lambda: Library.open(root, create=False), ServeOptions(library_workers=2))
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop on this thread
    try:
        assert thread_of_job(state, quick=True) != loop_thread  # not open yet: a worker answers, and opens it
        wait_for_loop_library(state)
        assert thread_of_job(state, quick=True) == loop_thread
        assert thread_of_job(state, quick=False) != loop_thread
        manifest = root / "index" / "index.json"
        os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 10**9))  # as a new index would
        assert thread_of_job(state, quick=True) != loop_thread  # stale: never answered from old files
        wait_for_loop_library(state)
        assert thread_of_job(state, quick=True) == loop_thread
    finally:
        state.close()


def test_a_server_process_builds_the_map_as_it_starts(served_home, tmp_path: Path) -> None:
    from musimilar.embeddings import load_embeddings
    from musimilar.maplayout import layout_key
    from musimilar.serve.mapping import warm_map

    root = Path(shutil.copytree(served_home[0], tmp_path / "home"))
    shutil.rmtree(root / "map", ignore_errors=True)
    state = ServerState(lambda: Library.open(root, create=False), ServeOptions(library_workers=1))
    key = layout_key(load_embeddings(root / "embeddings"), "pca")
    try:
        assert state.cached_map("pca", key) is None
        warm_map(state)
        deadline = time.monotonic() + 60
        while state.cached_map("pca", key) is None:
            assert time.monotonic() < deadline, "the map was never built"
            time.sleep(0.05)
    finally:
        state.close()

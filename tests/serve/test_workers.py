"""`musimilar serve --workers 2`: two server processes on one port, both answering, a login code working once across
them; and the plan each process builds its app from."""

from __future__ import annotations

import http.client
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from real_server import client_ports, start_server, stop, worker_pids

from musimilar.serve.auth import TOKEN_ENV
from musimilar.serve.state import ServeOptions
from musimilar.serve.worker import PLAN_ENV, WorkerPlan, exported

CONNECTIONS_PER_ROUND = 16
ROUNDS_SECONDS = 60


def test_the_plan_is_in_the_environment_only_while_serving(tmp_path: Path) -> None:
    plan = WorkerPlan(tmp_path / "home", None, ServeOptions("::1", 9000, workers=2), True, tmp_path / "codes")
    with exported(plan, "a-long-test-token"):
        assert WorkerPlan.from_json(os.environ[PLAN_ENV]) == plan
        access = plan.access(os.environ)
        assert access.token == "a-long-test-token" and access.login_codes.folder == tmp_path / "codes"
    assert PLAN_ENV not in os.environ and TOKEN_ENV not in os.environ


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="finds which process holds a connection in /proc")
def test_two_workers_answer_and_the_login_url_works_once_across_them(served_home, tmp_path: Path) -> None:
    private = tmp_path / "tmp"  # the server's temporary folders: the login codes', each worker's uploads'
    private.mkdir()
    browser = fake_browser(tmp_path)
    environ = {"TMPDIR": str(private), "BROWSER": str(browser)}
    arguments = ["--workers", "2", "--token", "--open"]
    server = start_server(served_home[0], tmp_path / "serve.log", *arguments, environ=environ)
    try:
        login_url = re.search(r"open (\S+) once", server.output()).group(1)
        code = login_url.rsplit("/", 1)[1]
        token = re.search(r"Bearer ([^']+)'", server.output()).group(1)
        assert opened(browser) == login_url
        workers = worker_pids(server.process.pid)
        assert len(workers) == 2, workers
        first, second = (held[0] for held in connections_on_each_worker(server.port, workers, token))
        assert answer(first, f"/login/{code}").status == 303  # the code works on one worker...
        assert answer(second, f"/login/{code}").status == 401  # ...then on no other
        assert answer(first, f"/login/{code}").status == 401
        for connection in (first, second):
            assert answer(connection, "/api/tracks").status == 401
            statuses = {answer(connection, f"/api/similar?seed={s}&k=5", token).status for s in range(1, 33)}
            assert statuses == {200}
    finally:
        status = stop(server.process)
    assert status == 0, server.output()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert not list(private.iterdir())
    assert token not in server.output().replace(f"Bearer {token}'", "")  # printed once, where serve says so


def fake_browser(folder: Path) -> Path:
    """A `$BROWSER` that writes the URL it is given next to itself."""
    script = folder / "browser"
    script.write_text(f'#!/bin/sh\necho "$1" > "{folder}/opened"\n')
    script.chmod(0o755)
    return script


def opened(browser: Path) -> str:
    deadline = time.monotonic() + ROUNDS_SECONDS
    while not (browser.parent / "opened").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    return (browser.parent / "opened").read_text().strip()


def answer(connection: http.client.HTTPConnection, path: str, token: str | None = None) -> http.client.HTTPResponse:
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = connection.getresponse()
    response.read()
    return response


def connections_on_each_worker(port: int, workers: list[int], token: str) -> list[list[http.client.HTTPConnection]]:
    """Kept-alive connections, at least one accepted by each worker (the kernel hands a new connection to whichever
    worker accepts first, so rounds of simultaneous connections until both have some)."""
    deadline = time.monotonic() + ROUNDS_SECONDS
    while time.monotonic() < deadline:
        with ThreadPoolExecutor(CONNECTIONS_PER_ROUND) as pool:
            connections = list(pool.map(lambda _: connected(port, token), range(CONNECTIONS_PER_ROUND)))
        held = []
        for pid in workers:
            ports = client_ports(pid, port)
            held.append([c for c in connections if c.sock.getsockname()[1] in ports])
        if all(held):
            return held
        for connection in connections:
            connection.close()
    raise AssertionError(f"a worker accepted no connection in {ROUNDS_SECONDS} s")


def connected(port: int, token: str) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    assert answer(connection, "/api/status", token).status == 200
    return connection

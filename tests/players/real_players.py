"""Real music servers and players (Supysonic, MPD), started by the tests on loopback.

Each starts its program in a temporary folder with a free 127.0.0.1 port, waits until it answers, and
stops it (and removes everything) afterwards: no process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # console scripts of the test environment (supysonic-cli, beet)
START_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port} after {START_SECONDS:.0f} s: {log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(command: list[str], cwd: Path, port: int, log: Path) -> subprocess.Popen:
    """Start a server in a process group of its own (so stopping it stops its children too)."""
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, log)
    except BaseException:
        stop(process)
        raise
    return process


@dataclass
class Supysonic:
    url: str
    user: str
    password: str
    music: Path
    process: subprocess.Popen
    folder: Path

    def stop(self) -> None:
        stop(self.process)


def _supysonic_cli(folder: Path, *arguments: str) -> None:
    subprocess.run([str(BIN / "supysonic-cli"), *arguments], cwd=folder, check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def running_supysonic(folder: Path, music: Path) -> Iterator[Supysonic]:
    """A real Supysonic (Subsonic API) on 127.0.0.1 with user alice and the scanned `music` folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "supysonic.conf").write_text(
        f"[base]\ndatabase_uri = sqlite:///{folder}/supysonic.db\n"
        f"[webapp]\ncache_dir = {folder}/cache\nmount_webui = no\nlog_level = WARNING\n"
        f"[daemon]\nsocket = {folder}/daemon.sock\nrun_watcher = no\n",
        encoding="utf-8",
    )
    _supysonic_cli(folder, "user", "add", "alice", "-p", "open sesame")
    _supysonic_cli(folder, "folder", "add", "music", str(music))
    _supysonic_cli(folder, "folder", "scan", "music", "-f")
    port = free_port()
    command = [str(BIN / "supysonic-server"), "-S", "waitress", "-h", "127.0.0.1", "-p", str(port)]
    process = start(command, folder, port, folder / "server.log")
    server = Supysonic(f"http://127.0.0.1:{port}", "alice", "open sesame", music, process, folder)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Mpd:
    host: str
    port: int
    music: Path
    config: Path
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self):  # noqa: ANN201 - an mpd.MPDClient
        import mpd

        client = mpd.MPDClient()
        client.timeout = 10
        client.connect(self.host, self.port)
        return client

    def stop(self) -> None:
        stop(self.process)

    def restart(self) -> None:
        self.process = _start_mpd(self.config, self.port)


def _start_mpd(config: Path, port: int) -> subprocess.Popen:
    return start(["mpd", "--no-daemon", "--stderr", str(config)], config.parent, port, config.parent / "stderr.log")


def _update_database(mpd_server: Mpd) -> None:
    client = mpd_server.client()
    try:
        client.update()
        deadline = time.monotonic() + START_SECONDS
        while "updating_db" in client.status() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.disconnect()


@contextlib.contextmanager
def running_mpd(folder: Path, music: Path) -> Iterator[Mpd]:
    """A real MPD on 127.0.0.1 with a null audio output, its database updated from `music`."""
    if shutil.which("mpd") is None:
        pytest.fail("mpd is not installed (apt-get install -y mpd; .ci/run installs it)")
    (folder / "playlists").mkdir(parents=True)
    port = free_port()
    config = folder / "mpd.conf"
    config.write_text(
        f'music_directory "{music}"\n'
        f'playlist_directory "{folder}/playlists"\n'
        f'db_file "{folder}/database"\n'
        f'log_file "{folder}/log"\n'
        'bind_to_address "127.0.0.1"\n'
        f'port "{port}"\n'
        'auto_update "no"\n'
        'zeroconf_enabled "no"\n'
        'audio_output {\n  type "null"\n  name "silence"\n}\n',
        encoding="utf-8",
    )
    server = Mpd("127.0.0.1", port, music, config, _start_mpd(config, port))
    try:
        _update_database(server)
        yield server
    finally:
        server.stop()

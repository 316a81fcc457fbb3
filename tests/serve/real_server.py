"""`musimilar serve` started for real, in a process of its own, on a free loopback port; and, on Linux, which of
its processes holds which connection (read from /proc)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 90
STOP_SECONDS = 20


@dataclass(frozen=True)
class RunningServer:
    process: subprocess.Popen
    port: int
    log: Path  # its stdout and stderr

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, log: Path, *arguments: str, environ: dict[str, str] | None = None) -> RunningServer:
    """`musimilar serve --home ROOT ARGUMENTS...`, once it answers HTTP (any status: a token may be needed)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MUSIMILAR_")} | (environ or {})
    command = [sys.executable, "-m", "musimilar", "serve", "--home", str(root), "--port", str(port), *arguments]
    with log.open("wb") as stream:
        process = subprocess.Popen(command, env=environment, stdout=stream, stderr=subprocess.STDOUT)
    server = RunningServer(process, port, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {server.output()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/status")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    stop(process)
    raise AssertionError(f"serve did not answer within {START_SECONDS} s: {server.output()}")


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, as a service manager stops it; its exit status (None when it had to be killed)."""
    process.terminate()
    try:
        return process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def worker_pids(parent: int) -> list[int]:
    """The server processes uvicorn's supervisor started (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            command = (entry / "cmdline").read_bytes() if stat else b""
        except OSError:
            continue  # gone meanwhile
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)


def client_ports(pid: int, port: int) -> set[int]:
    """The client-side ports of the connections to `port` that process `pid` has accepted (IPv4)."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(local.split(":")[1], 16) == port:
            ports.add(int(remote.split(":")[1], 16))
    return ports
